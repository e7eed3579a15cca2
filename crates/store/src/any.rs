//! [`AnyStore`]: the backend a database URL names, behind one type, so the
//! binary can take `--database` as either.

use crate::events::*;
use crate::lanes::*;
use crate::types::*;
use crate::webhooks::*;
use crate::{PostgresStore, Result, SqliteStore, Store};

/// The store a URL names: `postgres://` or `postgresql://` for
/// [`PostgresStore`], anything else (`sqlite://path`, a plain path) for
/// [`SqliteStore`].
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

/// The libpq settings a key=value connection string may start with.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "application_name",
    "options",
    "connect_timeout",
];

/// Whether `url` names a PostgreSQL database: a `postgres://` or
/// `postgresql://` URL, or libpq's key=value form (`host=db user=gw ...`,
/// recognised by its first word naming a libpq setting).
pub fn is_postgres_url(url: &str) -> bool {
    let trimmed = url.trim_start();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return true;
    }
    trimmed
        .split_whitespace()
        .next()
        .and_then(|word| word.split_once('='))
        .is_some_and(|(key, _)| LIBPQ_KEYWORDS.contains(&key))
}

/// `database` as it may appear in messages: a URL's password, and any
/// `password=` setting (the key=value form, a query parameter), replaced.
pub fn database_shown(database: &str) -> String {
    let mut out = match database.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user_info, host)) if user_info.contains(':') => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => database.to_owned(),
        },
        None => database.to_owned(),
    };
    let mut from = 0;
    while let Some(at) = out[from..].to_ascii_lowercase().find("password=") {
        let start = from + at + "password=".len();
        let end = out[start..]
            .find([' ', '&'])
            .map_or(out.len(), |n| start + n);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

impl AnyStore {
    /// Opens the database `url` names and applies its migrations.
    ///
    /// # Errors
    /// As [`SqliteStore::open`] or [`PostgresStore::open`].
    pub async fn open(url: &str) -> Result<Self> {
        if is_postgres_url(url) {
            PostgresStore::open(url).await.map(Self::Postgres)
        } else {
            SqliteStore::open(url).await.map(Self::Sqlite)
        }
    }
}

/// Forwards a trait method to whichever backend this is.
macro_rules! forward {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(s) => s.$method($($arg),*).await,
            AnyStore::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    fn outcomes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        match self {
            AnyStore::Sqlite(s) => s.outcomes(),
            AnyStore::Postgres(s) => s.outcomes(),
        }
    }

    fn lanes_wanted(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        match self {
            AnyStore::Sqlite(s) => s.lanes_wanted(),
            AnyStore::Postgres(s) => s.lanes_wanted(),
        }
    }

    async fn want_lane(&self, lane: &str) -> Result<()> {
        forward!(self, want_lane(lane))
    }

    fn is_shared(&self) -> bool {
        match self {
            AnyStore::Sqlite(s) => s.is_shared(),
            AnyStore::Postgres(s) => s.is_shared(),
        }
    }

    async fn create_api_key(&self, new: NewApiKey, now: i64) -> Result<ApiKey> {
        forward!(self, create_api_key(new, now))
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        forward!(self, api_key_by_hash(hash))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        forward!(self, list_api_keys())
    }

    async fn revoke_api_key(&self, name: &str, now: i64) -> Result<bool> {
        forward!(self, revoke_api_key(name, now))
    }

    async fn put_account(&self, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
        forward!(self, put_account(name, session_sealed, now))
    }

    async fn account(&self, name: &str) -> Result<Option<Vec<u8>>> {
        forward!(self, account(name))
    }

    async fn image(&self, id: i64) -> Result<Option<Vec<u8>>> {
        forward!(self, image(id))
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        forward!(self, list_accounts())
    }

    async fn remove_account(&self, name: &str) -> Result<bool> {
        forward!(self, remove_account(name))
    }

    async fn set_account_listen(&self, name: &str, listen: bool) -> Result<bool> {
        forward!(self, set_account_listen(name, listen))
    }

    async fn set_account_status(
        &self,
        name: &str,
        status: AccountStatus,
        now: i64,
    ) -> Result<bool> {
        forward!(self, set_account_status(name, status, now))
    }

    async fn set_conversation_cursor(
        &self,
        account: &str,
        conversation_id: &str,
        last_server_message_id: i64,
        last_index: i64,
    ) -> Result<bool> {
        forward!(
            self,
            set_conversation_cursor(account, conversation_id, last_server_message_id, last_index)
        )
    }

    async fn conversation_cursors(&self, account: &str) -> Result<Vec<ConversationCursor>> {
        forward!(self, conversation_cursors(account))
    }

    async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        forward!(self, enqueue(request, windows, now))
    }

    async fn idempotent_repeat(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Enqueued>> {
        forward!(self, idempotent_repeat(api_key_id, key, request_hash))
    }

    async fn claim_due(&self, now: i64, scope: &ClaimScope, max: u32) -> Result<Vec<Claimed>> {
        forward!(self, claim_due(now, scope, max))
    }

    async fn heartbeat(&self, beat: GatewayBeat, now: i64) -> Result<Ownership> {
        forward!(self, heartbeat(beat, now))
    }

    async fn change_leases(&self, change: LeaseChange, now: i64) -> Result<Vec<HeldLane>> {
        forward!(self, change_leases(change, now))
    }

    async fn set_pace_key(&self, lane: &str, pace_key: &str) -> Result<()> {
        forward!(self, set_pace_key(lane, pace_key))
    }

    async fn push_pacing(&self, lane: &str, not_before: i64) -> Result<()> {
        forward!(self, push_pacing(lane, not_before))
    }

    async fn mark_sent(
        &self,
        claim: Claim,
        server_message_id: &str,
        transport: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        forward!(
            self,
            mark_sent(claim, server_message_id, transport, now, event)
        )
    }

    async fn reschedule(
        &self,
        claim: Claim,
        next_attempt_at: i64,
        transmitted: bool,
        error: &DeliveryError,
        now: i64,
    ) -> Result<bool> {
        forward!(
            self,
            reschedule(claim, next_attempt_at, transmitted, error, now)
        )
    }

    async fn renew(&self, claim: Claim, locked_until: i64) -> Result<bool> {
        forward!(self, renew(claim, locked_until))
    }

    async fn release(&self, claim: Claim, next_attempt_at: i64) -> Result<bool> {
        forward!(self, release(claim, next_attempt_at))
    }

    async fn finish(
        &self,
        claim: Claim,
        state: State,
        error: &DeliveryError,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        forward!(self, finish(claim, state, error, now, event))
    }

    async fn snapshot(
        &self,
        request_id: Option<&str>,
        api_key_id: i64,
        windows: &[QuotaWindow],
        day_start: i64,
        month_start: i64,
    ) -> Result<Snapshot> {
        forward!(
            self,
            snapshot(request_id, api_key_id, windows, day_start, month_start)
        )
    }

    async fn outbox_depth(&self) -> Result<u64> {
        forward!(self, outbox_depth())
    }

    async fn delete_expired(&self, before: i64, max: u32) -> Result<Expired> {
        forward!(self, delete_expired(before, max))
    }

    async fn append_events(&self, events: Vec<NewEvent>, now: i64) -> Result<Vec<Appended>> {
        forward!(self, append_events(events, now))
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        forward!(self, events_after(after, filter, limit))
    }

    async fn latest_event_cursor(&self) -> Result<i64> {
        forward!(self, latest_event_cursor())
    }

    async fn delete_expired_events(&self, before: i64) -> Result<u64> {
        forward!(self, delete_expired_events(before))
    }

    async fn create_webhook(&self, new: NewWebhook, max_per_key: u32, now: i64) -> Result<Webhook> {
        forward!(self, create_webhook(new, max_per_key, now))
    }

    async fn webhooks_for_key(&self, key_id: i64) -> Result<Vec<Webhook>> {
        forward!(self, webhooks_for_key(key_id))
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        forward!(self, webhook(id))
    }

    async fn delete_webhook(&self, key_id: i64, id: &str) -> Result<bool> {
        forward!(self, delete_webhook(key_id, id))
    }

    async fn claim_webhook_deliveries(
        &self,
        limit: u32,
        per_webhook: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        forward!(
            self,
            claim_webhook_deliveries(limit, per_webhook, lease_ms, now)
        )
    }

    async fn finish_webhook_delivery(
        &self,
        claim: WebhookClaim,
        outcome: WebhookOutcome,
        now: i64,
    ) -> Result<bool> {
        forward!(self, finish_webhook_delivery(claim, outcome, now))
    }

    async fn replay_webhook(
        &self,
        key_id: i64,
        webhook_id: &str,
        since_cursor: i64,
        now: i64,
    ) -> Result<u64> {
        forward!(self, replay_webhook(key_id, webhook_id, since_cursor, now))
    }

    async fn webhook_delivery_stats(&self) -> Result<WebhookDeliveryStats> {
        forward!(self, webhook_delivery_stats())
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>> {
        forward!(self, key_check())
    }

    async fn put_key_check(&self, value: &[u8]) -> Result<Vec<u8>> {
        forward!(self, put_key_check(value))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_is_recognised_in_both_forms_and_paths_are_sqlite() {
        for pg in [
            "postgres://gw@db/gw",
            "POSTGRESQL://gw@db/gw",
            "host=db user=gw dbname=gw",
            "  dbname=gw",
        ] {
            assert!(super::is_postgres_url(pg), "{pg}");
        }
        for sqlite in [
            "tiktok-dm.sqlite",
            "sqlite://data/gw.sqlite",
            "/var/lib/tdm/gw.sqlite",
            "weird=name.sqlite",
        ] {
            assert!(!super::is_postgres_url(sqlite), "{sqlite}");
        }
    }

    #[test]
    fn a_database_is_shown_without_its_password() {
        for (given, shown) in [
            ("gw.sqlite", "gw.sqlite"),
            (
                "postgres://gw:s3cret@db:5432/gw",
                "postgres://gw:***@db:5432/gw",
            ),
            (
                "postgres://gw@db/gw?password=s3cret&sslmode=disable",
                "postgres://gw@db/gw?password=***&sslmode=disable",
            ),
            (
                "host=db user=gw password=s3cret dbname=gw",
                "host=db user=gw password=*** dbname=gw",
            ),
        ] {
            assert_eq!(super::database_shown(given), shown);
        }
    }
}
