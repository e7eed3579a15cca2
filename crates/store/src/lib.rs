#![doc = include_str!("../README.md")]

//! Durable storage for the gateway: API keys (hashed), stored TikTok accounts
//! (sealed by the caller), accepted requests, the outbox, and quota.
//!
//! [`Store`] is the interface; [`SqliteStore`] the default backend and
//! [`PostgresStore`] the server one; [`AnyStore`] picks one by URL scheme.
//! Every operation that must be atomic (quota reservation with the outbox
//! insert, claiming due rows) is one trait method, so each backend uses its own
//! mechanism (SQLite: one writer thread with group commit and a lease column;
//! PostgreSQL: a row lock per API key and `FOR UPDATE SKIP LOCKED`). Usage and
//! quota are kept in counters, never counted by scanning.
//!
//! Receiving (issue 18): an event log whose cursors increase in commit order
//! (SQLite: the one writer; PostgreSQL: an advisory lock held by appending
//! transactions until they commit), deduplicated per account; webhooks per
//! API key, whose deliveries are queued in the transaction that appends their
//! event and claimed as the outbox's messages are (a lease and a fencing
//! token).

mod any;
mod columns;
mod counters;
mod error;
mod events;
mod lanes;
mod postgres;
mod sqlite;
mod types;
mod webhooks;

use std::future::Future;

pub use any::{AnyStore, database_shown, is_postgres_url};
pub use error::{Error, Result};
pub use events::*;
pub use lanes::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use types::*;
pub use webhooks::*;

/// Everything the gateway persists. Times are Unix milliseconds.
pub trait Store: Clone + Send + Sync + 'static {
    /// Whether several gateway processes may share this database
    /// (PostgreSQL): they then split the lanes between them. A SQLite
    /// database has one gateway, which holds every lane.
    fn is_shared(&self) -> bool;

    /// Request ids whose messages ended (sent, failed or unknown) in any
    /// process sharing the database, from now on, as far as it can tell:
    /// `None` where only this process writes (SQLite). Best effort: ids
    /// may be missed (a lost connection, a subscriber fallen behind), so
    /// it only hastens what reading the store would find.
    fn outcomes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Lanes any process on this database and schema (this one too)
    /// announced with [`Store::want_lane`], from now on: `None` where only
    /// this process writes (SQLite). Best effort, as [`Store::outcomes`]: it
    /// only hastens what the next claim and heartbeat would do.
    fn lanes_wanted(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Tells every process sharing the database and schema that `lane` has
    /// a message accepted (and committed): its holder may claim at once, and
    /// the process it belongs to may take it. Does nothing where only this
    /// process writes.
    fn want_lane(&self, lane: &str) -> impl Future<Output = Result<()>> + Send {
        let _ = lane;
        async { Ok(()) }
    }

    /// Stores a new API key (its hash, never the key).
    fn create_api_key(
        &self,
        new: NewApiKey,
        now: i64,
    ) -> impl Future<Output = Result<ApiKey>> + Send;
    /// The key with this hash, revoked or not.
    fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Every key, newest first.
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;
    /// Revokes the key named `name`, dropping its webhooks' open deliveries;
    /// false when there is none (or it was revoked).
    fn revoke_api_key(&self, name: &str, now: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Adds or replaces a stored account's sealed session; a fresh session
    /// makes it [`AccountStatus::Active`] again (its `listen` stays).
    fn put_account(
        &self,
        name: &str,
        session_sealed: &[u8],
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A stored account's sealed session.
    fn account(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// The image of outbox row `id`, or `None` when the row has none (a text,
    /// or a message whose image was dropped once it was final).
    fn image(&self, id: i64) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Stored accounts (names and times; never the session).
    fn list_accounts(&self) -> impl Future<Output = Result<Vec<AccountInfo>>> + Send;
    /// Removes a stored account, with its conversation cursors; false when
    /// there is none.
    fn remove_account(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Whether the gateway listens for a stored account's DMs; false when
    /// there is no such account.
    fn set_account_listen(
        &self,
        name: &str,
        listen: bool,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Records whether a stored account's session works (`status_changed_at`
    /// moves to `now` when it changes); false when there is no such account.
    fn set_account_status(
        &self,
        name: &str,
        status: AccountStatus,
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Moves a conversation's catch-up cursor forward: each value becomes the
    /// greater of the stored one and the one given, so a late, older write
    /// cannot take it back. False when there is no such account.
    fn set_conversation_cursor(
        &self,
        account: &str,
        conversation_id: &str,
        last_server_message_id: i64,
        last_index: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// A stored account's catch-up cursors, by conversation id.
    fn conversation_cursors(
        &self,
        account: &str,
    ) -> impl Future<Output = Result<Vec<ConversationCursor>>> + Send;

    /// What accepting a request with `request_hash` under the idempotency
    /// key `key` would answer from the key alone: [`Enqueued::Replay`] of the
    /// request kept under it, [`Enqueued::IdempotencyConflict`], or `None`
    /// when the key is new. A read (for work worth skipping on a replay);
    /// [`Store::enqueue`] checks again.
    fn idempotent_repeat(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
    ) -> impl Future<Output = Result<Option<Enqueued>>> + Send;
    /// Accepts a request: checks the idempotency key, reserves quota in every
    /// window and writes the outbox rows, all in one transaction, so concurrent
    /// requests can never exceed a limit.
    fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> impl Future<Output = Result<Enqueued>> + Send;
    /// Claims up to `max` due messages for delivery (state `sending`, leased
    /// until `now + scope.lease_ms`): only messages of lanes `scope.gateway`
    /// holds a lease on, each taking its pacing slot ([`ClaimScope`]). Rows
    /// whose lease expired (a crashed worker) are due again. A row that does
    /// not read back as a message is claimed as a [`CorruptMessage`], for
    /// the caller to end.
    fn claim_due(
        &self,
        now: i64,
        scope: &ClaimScope,
        max: u32,
    ) -> impl Future<Output = Result<Vec<Claimed>>> + Send;
    /// Records gateway `beat.id` as alive until `beat.expires_at` (and
    /// forgets gateways dead for a day); answers the live gateways and
    /// every lane with its lease.
    fn heartbeat(
        &self,
        beat: GatewayBeat,
        now: i64,
    ) -> impl Future<Output = Result<Ownership>> + Send;
    /// Takes, renews and gives up leases in one transaction (see
    /// [`LeaseChange`]); a lease changing owner raises its token. Answers
    /// every lease the gateway holds afterwards.
    fn change_leases(
        &self,
        change: LeaseChange,
        now: i64,
    ) -> impl Future<Output = Result<Vec<HeldLane>>> + Send;
    /// Paces `lane` by `pace_key` (the TikTok uid its session sends as), so
    /// lanes of one TikTok account share one pacing clock; the new key's next
    /// send time is at least the old one's.
    fn set_pace_key(&self, lane: &str, pace_key: &str) -> impl Future<Output = Result<()>> + Send;
    /// Moves the next send time of `lane`'s pace key to `not_before` unless it
    /// is later already: a send went later than its slot (it waited for its
    /// session), and the next, on whichever gateway, must keep the interval
    /// after it.
    fn push_pacing(&self, lane: &str, not_before: i64) -> impl Future<Output = Result<()>> + Send;
    /// Records a delivery. Every write of an outcome (this one, `reschedule`,
    /// `release`, `renew`, `finish`) applies only to a row still `sending`
    /// under `claim`'s token, and answers whether it did. When it applies,
    /// `event` (if any) is appended to the log (as [`Store::append_events`]
    /// would) in the same transaction: the outcome and its event are stored
    /// together or not at all.
    fn mark_sent(
        &self,
        claim: Claim,
        server_message_id: &str,
        transport: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> impl Future<Output = Result<Recorded>> + Send;
    /// Puts a message back for another attempt at `next_attempt_at`; an
    /// attempt that `transmitted` (reached TikTok) also counts in
    /// [`OutboxMessage::transmissions`].
    fn reschedule(
        &self,
        claim: Claim,
        next_attempt_at: i64,
        transmitted: bool,
        error: &DeliveryError,
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Gives a claimed message back untried (pacing said not yet): `accepted`
    /// again at `next_attempt_at`, without counting the attempt.
    fn release(
        &self,
        claim: Claim,
        next_attempt_at: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Moves the lease of a message being delivered to `locked_until`, so
    /// that a delivery slower than a lease is not claimed a second time
    /// meanwhile; false when the lease is no longer this claim's.
    fn renew(&self, claim: Claim, locked_until: i64) -> impl Future<Output = Result<bool>> + Send;
    /// Ends a message: `failed` (its quota reservation is given back) or
    /// `unknown` (it may have been delivered; the reservation stays), with
    /// `event` logged as [`Store::mark_sent`] logs it.
    fn finish(
        &self,
        claim: Claim,
        state: State,
        error: &DeliveryError,
        now: i64,
        event: Option<NewEvent>,
    ) -> impl Future<Output = Result<Recorded>> + Send;
    /// Everything an API answer needs, in one read: the request and its
    /// messages (when `request_id` is given and it belongs to the key), the
    /// key's running totals (since `day_start`, since `month_start`, ever, and
    /// the image bytes ever), and the messages counted in each window. Failed
    /// messages, whose quota was given back, count in neither.
    fn snapshot(
        &self,
        request_id: Option<&str>,
        api_key_id: i64,
        windows: &[QuotaWindow],
        day_start: i64,
        month_start: i64,
    ) -> impl Future<Output = Result<Snapshot>> + Send;
    /// Messages not yet final.
    fn outbox_depth(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Deletes what retention no longer keeps: up to `max` requests whose
    /// every message is final and ended (was last written) before `before`,
    /// oldest first, with their messages; and the day and month usage
    /// counters of periods that ended before `before` (the all-time ones
    /// stay). A request with a message still to deliver stays, however old.
    /// Call again while [`Expired::requests`] is `max`.
    fn delete_expired(&self, before: i64, max: u32)
    -> impl Future<Output = Result<Expired>> + Send;

    /// Appends events to the log in one transaction, each under a new
    /// cursor, in the order given; an event whose account and dedupe key were
    /// logged before (or earlier in `events`) is not stored again and comes
    /// back as [`Appended::Duplicate`]. Cursors increase in commit order
    /// across every process sharing the database.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a text holds U+0000 (nothing is stored);
    /// the database's errors.
    fn append_events(
        &self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> impl Future<Output = Result<Vec<Appended>>> + Send;
    /// Up to `limit` events with a cursor above `after` that `filter`
    /// matches, in cursor order.
    fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredEvent>>> + Send;
    /// The highest cursor in the log (0 when it is empty).
    fn latest_event_cursor(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Deletes the events logged (`created_at`) before `before`, in batches
    /// of its own; how many.
    fn delete_expired_events(&self, before: i64) -> impl Future<Output = Result<u64>> + Send;

    /// Stores a webhook of key `new.key_id` under a new id (`wh_` and 16
    /// random hex digits), its event types each once in the order given.
    /// From then on, every event appended of a type it lists, of an account
    /// its key may see (`any_account`, or listed for the key), is queued for
    /// it, while the key is not revoked. The key may have at most
    /// `max_per_key` webhooks: counted and stored atomically, so creates at
    /// once never take it past that.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such key; [`Error::LimitReached`]
    /// when it has `max_per_key` already; [`Error::Invalid`] for a text with
    /// U+0000.
    fn create_webhook(
        &self,
        new: NewWebhook,
        max_per_key: u32,
        now: i64,
    ) -> impl Future<Output = Result<Webhook>> + Send;
    /// A key's webhooks, oldest first.
    fn webhooks_for_key(&self, key_id: i64) -> impl Future<Output = Result<Vec<Webhook>>> + Send;
    /// The webhook `id`, whichever key's it is (the caller checks).
    fn webhook(&self, id: &str) -> impl Future<Output = Result<Option<Webhook>>> + Send;
    /// Deletes the webhook `id` of key `key_id`, with its deliveries; false
    /// when that key has no such webhook.
    fn delete_webhook(&self, key_id: i64, id: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Claims up to `limit` due webhook deliveries, oldest first, leased
    /// until `now + lease_ms`: pending ones whose time has come, and claimed
    /// ones whose lease ran out (a worker that died). No webhook gets more
    /// than `per_webhook` in flight (its deliveries leased and not expired,
    /// by any claimer, these included), so one slow endpoint cannot take
    /// every slot; its other due ones stay pending, untouched. Each claim
    /// raises the row's fencing token. Deliveries of a revoked key's webhooks
    /// are not claimed.
    fn claim_webhook_deliveries(
        &self,
        limit: u32,
        per_webhook: u32,
        lease_ms: i64,
        now: i64,
    ) -> impl Future<Output = Result<Vec<ClaimedDelivery>>> + Send;
    /// Records how a claimed delivery went: delivered, due again at a time,
    /// or given up. Applies only to a row still claimed under `claim`'s
    /// token; false when the lease was lost (claimed again since).
    fn finish_webhook_delivery(
        &self,
        claim: WebhookClaim,
        outcome: WebhookOutcome,
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Queues again, due at `now`, every event after `since_cursor` that
    /// webhook `webhook_id` of key `key_id` receives, as new deliveries. An
    /// event whose delivery is still open stays one row: a pending one is made
    /// due at `now` with its attempts counted afresh and queued again at
    /// `now` ([`ClaimedDelivery::queued_at`]), one being delivered is left to
    /// its worker. How many were queued or made due (0 when the key
    /// has no such webhook).
    fn replay_webhook(
        &self,
        key_id: i64,
        webhook_id: &str,
        since_cursor: i64,
        now: i64,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// The open deliveries (pending, being delivered), for metrics.
    fn webhook_delivery_stats(&self) -> impl Future<Output = Result<WebhookDeliveryStats>> + Send;

    /// The master key's check value: an opaque value the caller sealed with
    /// its key ([`put_key_check`](Store::put_key_check)), or `None` when none
    /// was stored (a new database, or one from before key checks).
    fn key_check(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Stores `value` as the key check value unless there is one; answers the
    /// value stored (`value`, or the one another process stored first).
    fn put_key_check(&self, value: &[u8]) -> impl Future<Output = Result<Vec<u8>>> + Send;
}
