//! The PostgreSQL backend, for a gateway whose database is a server
//! (`postgres://...`): the same tables and behaviour as the SQLite backend, with
//! PostgreSQL's own concurrency instead of a single writer. Acceptances are
//! committed in groups by a writer task per store (`batch.rs`): a group
//! share-locks its API keys' rows (`FOR SHARE`: a revocation waits for it, or
//! it sees the revocation) and locks their counter rows until it commits, so
//! groups from several gateways take turns on a key's counters and never pass
//! a limit together; sent marks are grouped too (`sent.rs`); claims take due
//! rows with `FOR UPDATE SKIP LOCKED`, so several gateways can share one database without
//! claiming a message twice. Every commit is durable (PostgreSQL's default
//! `synchronous_commit`).
//!
//! tokio-postgres (the rust-postgres project's async driver) with a
//! deadpool-postgres pool, whose connections cache prepared statements.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Row};

use crate::Store;
use crate::columns::delivery_error_column;
use crate::counters::count;
use crate::error::{Error, Result};
use crate::events::EXPIRED_EVENTS_BATCH;
use crate::events::*;
use crate::lanes::*;
use crate::types::*;
use crate::webhooks::*;

mod accounts;
mod batch;
mod events;
mod key_cache;
mod lanes;
mod notices;
mod reads;
mod retention;
mod sent;
mod tls;
mod webhooks;
mod writes;

use reads::{read_status, read_totals};
use writes::{finish, idempotent_repeat, window_used};

/// The migrations, compiled into the binary; the table
/// `tiktok_dm_migrations` records which ran.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_open_kinds.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_claim_token.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_key_accounts.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_retention.sql"),
    ),
    (6, include_str!("../../migrations/postgres/0006_events.sql")),
    (
        7,
        include_str!("../../migrations/postgres/0007_listening.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_webhooks.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_inbox_type.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_webhook_queues.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_ownership.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_key_changes.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_claims_by_lane.sql"),
    ),
];

/// Connections per store.
const POOL_SIZE: usize = 16;
/// How long a new connection may take (unless the URL says otherwise).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long an operation waits for a pooled connection before the database
/// counts as unavailable.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Acceptances go to its writer task, which commits them in groups.
    batcher: batch::Batcher,
    /// So do sent marks without an event.
    sent: sent::SentBatcher,
    /// Key changes and ended messages, heard from every process.
    notices: notices::Notices,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// An API key's accounts, in order, as one column ([`ACCOUNT_SEPARATOR`]).
const KEY_ACCOUNTS: &str = "(SELECT string_agg(account, chr(31) ORDER BY position)
    FROM api_key_accounts WHERE api_key_id = api_keys.id)";

fn api_key(row: &Row) -> Result<ApiKey> {
    Ok(ApiKey::stored((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
    )))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`,
    /// or the key=value form) and applies the migrations. TLS follows libpq's
    /// `sslmode` (default `prefer`) and `sslrootcert`; see `tls.rs`.
    ///
    /// # Errors
    /// The URL is not valid, the server cannot be reached or its certificate
    /// is not accepted, or a migration fails. No message carries the URL or
    /// its password.
    pub async fn open(url: &str) -> Result<Self> {
        let (url, tls) = tls::split(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            Error::Migration(
                "the PostgreSQL URL is not valid (postgres://user:password@host:port/database)"
                    .into(),
            )
        })?;
        // Without a bound, a server that drops packets (a host that went
        // away) holds every request until the TCP stack gives up, minutes
        // later; a URL's own `connect_timeout` wins.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connector = tls::connector(&tls)?;
        let notices = notices::Notices::start(config.clone(), connector.clone());
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Migration(format!("cannot build the connection pool: {e}")))?;
        let batcher = batch::Batcher::start(pool.clone());
        let sent = sent::SentBatcher::start(pool.clone());
        let store = Self {
            pool,
            batcher,
            sent,
            notices,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS tiktok_dm_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(|e| Error::Migration(Error::from(e).to_string()))?;
        let tx = c.transaction().await?;
        // Two gateways starting at once: the second waits, then finds it done.
        tx.batch_execute("LOCK TABLE tiktok_dm_migrations IN EXCLUSIVE MODE")
            .await?;
        let done: Option<i64> = tx
            .query_one("SELECT MAX(version) FROM tiktok_dm_migrations", &[])
            .await?
            .try_get(0)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for (n, sql) in MIGRATIONS {
            if *n <= done.unwrap_or(0) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|e| Error::Migration(format!("migration {n}: {}", Error::from(e))))?;
            tx.execute(
                "INSERT INTO tiktok_dm_migrations (version, applied_at) VALUES ($1, $2)",
                &[n, &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store for PostgresStore {
    fn is_shared(&self) -> bool {
        true
    }

    fn outcomes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.notices.outcomes())
    }

    fn lanes_wanted(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.notices.lanes())
    }

    async fn want_lane(&self, lane: &str) -> Result<()> {
        let c = self.client().await?;
        let s = c
            .prepare_cached(&format!(
                "SELECT pg_notify('{}', current_schema() || E'\\t' || $1)",
                notices::LANES
            ))
            .await?;
        c.execute(&s, &[&lane]).await?;
        Ok(())
    }

    async fn create_api_key(&self, new: NewApiKey, now: i64) -> Result<ApiKey> {
        new.check()?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let inserted = tx
            .query_one(
                "INSERT INTO api_keys (name, prefix, key_hash, daily_limit, monthly_limit, account, created_at, any_account)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &new.name,
                    &new.prefix,
                    &&new.key_hash[..],
                    &new.daily_limit.map(i64::from),
                    &new.monthly_limit.map(i64::from),
                    &new.accounts.first(),
                    &now,
                    &new.any_account,
                ],
            )
            .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get(0)?,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(Error::Duplicate(format!("an API key named {:?}", new.name)));
            }
            Err(e) => return Err(e.into()),
        };
        for (position, account) in new.accounts.iter().enumerate() {
            tx.execute(
                "INSERT INTO api_key_accounts (api_key_id, position, account) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&id, &i32::try_from(position).unwrap_or(i32::MAX), account],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ApiKey::created(id, new, now))
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        if let Some(key) = self.notices.keys().get(hash) {
            return Ok(Some(key));
        }
        let generation = self.notices.keys().generation();
        let c = self.client().await?;
        let s = c
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS}, {KEY_ACCOUNTS} FROM api_keys WHERE key_hash = $1"
            ))
            .await?;
        let found = c.query_opt(&s, &[&&hash[..]]).await?;
        let found = found.as_ref().map(api_key).transpose()?;
        if let Some(key) = &found {
            self.notices.keys().keep(*hash, key, generation);
        }
        Ok(found)
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {API_KEY_COLUMNS}, {KEY_ACCOUNTS} FROM api_keys ORDER BY id DESC"),
                &[],
            )
            .await?;
        rows.iter().map(api_key).collect()
    }

    async fn revoke_api_key(&self, name: &str, now: i64) -> Result<bool> {
        if !storable(name) {
            return Ok(false);
        }
        // One statement: the key, and its webhooks' open deliveries.
        let c = self.client().await?;
        let row = c
            .query_one(
                "WITH revoked AS (
                    UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id
                 ), dropped AS (
                    DELETE FROM webhook_deliveries d USING webhooks w, revoked r
                    WHERE d.webhook_id = w.id AND w.api_key_id = r.id AND d.state IN ('pending', 'delivering')
                 )
                 SELECT count(*) FROM revoked",
                &[&now, &name],
            )
            .await?;
        // Not kept here a moment longer than the notification takes.
        self.notices.keys().changed();
        Ok(row.try_get::<_, i64>(0)? == 1)
    }

    async fn put_account(&self, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
        check("an account name", name)?;
        accounts::put(&self.client().await?, name, session_sealed, now).await
    }

    async fn account(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if !storable(name) {
            return Ok(None);
        }
        let c = self.client().await?;
        let s = c
            .prepare_cached("SELECT session_sealed FROM accounts WHERE name = $1")
            .await?;
        Ok(c.query_opt(&s, &[&name])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    async fn image(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let c = self.client().await?;
        let s = c
            .prepare_cached("SELECT image FROM outbox WHERE id = $1")
            .await?;
        Ok(c.query_opt(&s, &[&id])
            .await?
            .map(|r| r.try_get::<_, Option<Vec<u8>>>(0))
            .transpose()?
            .flatten())
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        accounts::list(&self.client().await?).await
    }

    async fn remove_account(&self, name: &str) -> Result<bool> {
        if !storable(name) {
            return Ok(false);
        }
        accounts::remove(&self.client().await?, name).await
    }

    async fn set_account_listen(&self, name: &str, listen: bool) -> Result<bool> {
        if !storable(name) {
            return Ok(false);
        }
        accounts::set_listen(&self.client().await?, name, listen).await
    }

    async fn set_account_status(
        &self,
        name: &str,
        status: AccountStatus,
        now: i64,
    ) -> Result<bool> {
        if !storable(name) {
            return Ok(false);
        }
        accounts::set_status(&self.client().await?, name, status, now).await
    }

    async fn set_conversation_cursor(
        &self,
        account: &str,
        conversation_id: &str,
        last_server_message_id: i64,
        last_index: i64,
    ) -> Result<bool> {
        check("a conversation id", conversation_id)?;
        if !storable(account) {
            return Ok(false);
        }
        let c = self.client().await?;
        accounts::set_cursor(
            &c,
            account,
            conversation_id,
            last_server_message_id,
            last_index,
        )
        .await
    }

    async fn conversation_cursors(&self, account: &str) -> Result<Vec<ConversationCursor>> {
        if !storable(account) {
            return Ok(Vec::new());
        }
        accounts::cursors(&self.client().await?, account).await
    }

    async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        request.check()?;
        if batch::fits(windows, now) {
            self.batcher.enqueue(request, windows, now).await
        } else {
            batch::alone(&self.pool, request, windows, now).await
        }
    }

    async fn idempotent_repeat(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Enqueued>> {
        if !storable(key) {
            return Ok(None);
        }
        let c = self.client().await?;
        idempotent_repeat(&c, api_key_id, key, request_hash).await
    }

    async fn claim_due(&self, now: i64, scope: &ClaimScope, max: u32) -> Result<Vec<Claimed>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let claimed = lanes::claim(&tx, now, scope, max).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn heartbeat(&self, beat: GatewayBeat, now: i64) -> Result<Ownership> {
        let c = self.client().await?;
        lanes::heartbeat(&c, &beat, now).await
    }

    async fn change_leases(&self, change: LeaseChange, now: i64) -> Result<Vec<HeldLane>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let held = lanes::change_leases(&tx, &change, now).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn set_pace_key(&self, lane: &str, pace_key: &str) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        lanes::set_pace_key(&tx, lane, pace_key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_pacing(&self, lane: &str, not_before: i64) -> Result<()> {
        let c = self.client().await?;
        lanes::push_pacing(&c, lane, not_before).await
    }

    async fn mark_sent(
        &self,
        claim: Claim,
        server_message_id: &str,
        transport: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        let sent = (claim, server_message_id, transport, now);
        let Some(event) = event else {
            // One statement, in a group's (see `sent.rs`).
            let applied = self.sent.mark_sent(sent).await?;
            return Ok(Recorded {
                applied,
                event: None,
            });
        };
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let applied = writes::mark_sent(&tx, sent).await?;
        let recorded = events::logged(&tx, applied, event, now).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn reschedule(
        &self,
        claim: Claim,
        next_attempt_at: i64,
        transmitted: bool,
        error: &DeliveryError,
        now: i64,
    ) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE outbox SET state = 'accepted', next_attempt_at = $1, error = $2, locked_until = NULL, updated_at = $3,
                                   transmissions = transmissions + $6
                 WHERE id = $4 AND claim_token = $5 AND state = 'sending'",
                &[
                    &next_attempt_at,
                    &delivery_error_column(error),
                    &now,
                    &claim.id,
                    &claim.token,
                    &i64::from(transmitted),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn release(&self, claim: Claim, next_attempt_at: i64) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE outbox SET state = 'accepted', next_attempt_at = $1, attempts = GREATEST(attempts - 1, 0), locked_until = NULL
                 WHERE id = $2 AND claim_token = $3 AND state = 'sending'",
                &[&next_attempt_at, &claim.id, &claim.token],
            )
            .await?;
        Ok(n == 1)
    }

    async fn renew(&self, claim: Claim, locked_until: i64) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE outbox SET locked_until = $1 WHERE id = $2 AND claim_token = $3 AND state = 'sending'",
                &[&locked_until, &claim.id, &claim.token],
            )
            .await?;
        Ok(n == 1)
    }

    async fn finish(
        &self,
        claim: Claim,
        state: State,
        error: &DeliveryError,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let applied = finish(&tx, claim, state, &delivery_error_column(error), now).await?;
        let recorded = match event {
            Some(event) => events::logged(&tx, applied, event, now).await?,
            None => Recorded {
                applied,
                event: None,
            },
        };
        tx.commit().await?;
        Ok(recorded)
    }

    async fn snapshot(
        &self,
        request_id: Option<&str>,
        api_key_id: i64,
        windows: &[QuotaWindow],
        day_start: i64,
        month_start: i64,
    ) -> Result<Snapshot> {
        let mut c = self.client().await?;
        // One snapshot of the database for the whole answer.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let status = match request_id {
            Some(id) if storable(id) => read_status(&tx, id, api_key_id).await?,
            _ => None,
        };
        let mut used = Vec::with_capacity(windows.len());
        for w in windows {
            used.push(window_used(&tx, api_key_id, w).await?);
        }
        let totals = read_totals(&tx, api_key_id, day_start, month_start).await?;
        tx.commit().await?;
        Ok(Snapshot {
            status,
            totals,
            used,
        })
    }

    async fn outbox_depth(&self) -> Result<u64> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('accepted', 'sending')",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok(count(n))
    }

    async fn delete_expired(&self, before: i64, max: u32) -> Result<Expired> {
        retention::delete_expired(&self.client().await?, before, max).await
    }

    async fn append_events(&self, events: Vec<NewEvent>, now: i64) -> Result<Vec<Appended>> {
        events.iter().try_for_each(NewEvent::check)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        events::append(&mut self.client().await?, &events, now).await
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        events::events_after(&self.client().await?, after, filter, limit).await
    }

    async fn latest_event_cursor(&self) -> Result<i64> {
        events::latest_cursor(&self.client().await?).await
    }

    async fn delete_expired_events(&self, before: i64) -> Result<u64> {
        let c = self.client().await?;
        let mut deleted = 0;
        loop {
            let n = retention::delete_expired_events(&c, before, EXPIRED_EVENTS_BATCH).await?;
            deleted += n;
            if n < u64::from(EXPIRED_EVENTS_BATCH) {
                return Ok(deleted);
            }
        }
    }

    async fn create_webhook(&self, new: NewWebhook, max_per_key: u32, now: i64) -> Result<Webhook> {
        new.check()?;
        webhooks::create(&mut self.client().await?, &new, max_per_key, now).await
    }

    async fn webhooks_for_key(&self, key_id: i64) -> Result<Vec<Webhook>> {
        webhooks::for_key(&self.client().await?, key_id).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        if !storable(id) {
            return Ok(None);
        }
        webhooks::by_id(&self.client().await?, id).await
    }

    async fn delete_webhook(&self, key_id: i64, id: &str) -> Result<bool> {
        if !storable(id) {
            return Ok(false);
        }
        webhooks::delete(&self.client().await?, key_id, id).await
    }

    async fn claim_webhook_deliveries(
        &self,
        limit: u32,
        per_webhook: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let c = &mut self.client().await?;
        webhooks::claim(c, limit, per_webhook, lease_ms, now).await
    }

    async fn finish_webhook_delivery(
        &self,
        claim: WebhookClaim,
        outcome: WebhookOutcome,
        now: i64,
    ) -> Result<bool> {
        webhooks::finish(&self.client().await?, claim, &outcome, now).await
    }

    async fn replay_webhook(
        &self,
        key_id: i64,
        webhook_id: &str,
        since_cursor: i64,
        now: i64,
    ) -> Result<u64> {
        if !storable(webhook_id) {
            return Ok(0);
        }
        let c = self.client().await?;
        webhooks::replay(&c, key_id, webhook_id, since_cursor, now).await
    }

    async fn webhook_delivery_stats(&self) -> Result<WebhookDeliveryStats> {
        webhooks::stats(&self.client().await?).await
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>> {
        retention::key_check(&self.client().await?).await
    }

    async fn put_key_check(&self, value: &[u8]) -> Result<Vec<u8>> {
        retention::put_key_check(&self.client().await?, value).await
    }
}
