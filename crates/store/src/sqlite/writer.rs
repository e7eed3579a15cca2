//! The one writer: every change goes through a task that owns the write
//! connection and commits in groups. It takes one operation, then whatever else
//! is already waiting (up to [`MAX_BATCH`]), runs them in one transaction,
//! commits once (one fsync for the group), and only then answers each caller. A
//! caller therefore never hears "done" before its change is durable; how a
//! failing operation is contained is described at `apply_group`.

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::columns::{outbox_rows, target_columns};
use crate::error::{Error, Result};
use crate::events::{Appended, Recorded};
use crate::types::*;
use crate::webhooks::ClaimedDelivery;

use super::checkpointer::Checkpointer;
use crate::counters::{DAY_MS, add_counter, count, month_start, period_of};

/// Operations per transaction, at most.
pub(crate) const MAX_BATCH: usize = 512;

/// WAL frames past which the writer checkpoints (see `checkpointer.rs`) once
/// it has answered a group and no operation is waiting, so the copy and its
/// fsyncs fall between operations rather than inside one's commit.
const CHECKPOINT_WHEN_IDLE_FRAMES: i64 = 1_000;
/// WAL frames past which it checkpoints even with operations waiting, so a
/// writer that is never idle still lets the WAL start over. (Letting the WAL
/// grow long costs every commit: appending to a growing file makes each fsync
/// slower than overwriting, 0.33 against 0.17 ms on one benchmark machine.)
const CHECKPOINT_WHEN_BUSY_FRAMES: i64 = 4_000;
/// SQLite's own checkpoint in the commit path, left on at this many frames only
/// as a safety net, should the checkpoint thread stop reporting.
const SAFETY_NET_FRAMES: i64 = 20_000;

/// A change to make.
pub(crate) enum Op {
    CreateKey(NewApiKey, i64),
    RevokeKey(String, i64),
    /// Stored accounts (see `accounts.rs`).
    Accounts(super::accounts::AccountOp),
    Enqueue(NewRequest, Vec<QuotaWindow>, i64),
    /// Claims, gateways and leases (see `lanes.rs`).
    Lanes(super::lanes::LaneOp),
    Reschedule {
        claim: Claim,
        at: i64,
        transmitted: bool,
        error: String,
        now: i64,
    },
    Release {
        claim: Claim,
        at: i64,
    },
    Renew {
        claim: Claim,
        until: i64,
    },
    /// A delivery's outcome (see `outcomes.rs`).
    Outcome(super::outcomes::OutcomeOp),
    /// A retention batch (see `retention.rs`).
    DeleteExpired {
        before: i64,
        max: u32,
    },
    PutKeyCheck(Vec<u8>),
    /// The event log (see `events.rs`).
    Events(super::events::EventOp),
    /// Webhooks and their deliveries (see `webhooks.rs`).
    Webhooks(super::webhooks::WebhookOp),
}

impl Op {
    /// Whether the caller is told "accepted" or "stored" on the strength of
    /// this change: such a group is committed with a full fsync. The others
    /// (claims and delivery outcomes) are redone safely if a power cut takes
    /// them back: a message sent again keeps its client message id, by which
    /// a repeat is recognised (as after any ambiguous outcome).
    fn must_be_durable(&self) -> bool {
        match self {
            Op::Events(op) => op.must_be_durable(),
            Op::Webhooks(op) => op.must_be_durable(),
            Op::Outcome(op) => op.must_be_durable(),
            Op::Lanes(op) => op.must_be_durable(),
            Op::Reschedule { .. }
            | Op::Release { .. }
            | Op::Renew { .. }
            | Op::DeleteExpired { .. } => false,
            _ => true,
        }
    }

    /// Whether the operation writes with more than one statement (see
    /// `apply_group`). An account's operations are one statement each (a
    /// removal's cascade is part of it).
    fn has_several_statements(&self) -> bool {
        match self {
            Op::Events(op) => op.has_several_statements(),
            Op::Webhooks(op) => op.has_several_statements(),
            Op::Lanes(op) => op.has_several_statements(),
            Op::Enqueue(..) | Op::RevokeKey(..) | Op::Outcome(..) | Op::DeleteExpired { .. } => {
                true
            }
            _ => false,
        }
    }
}

/// What an operation gives back.
pub(crate) enum Done {
    Key(ApiKey),
    Flag(bool),
    Unit,
    Enqueued(Enqueued),
    Claimed(Vec<Claimed>),
    Expired(Expired),
    Bytes(Vec<u8>),
    Appended(Vec<Appended>),
    Recorded(Recorded),
    Count(u64),
    Webhook(super::webhooks::Created),
    Deliveries(Vec<ClaimedDelivery>),
    Ownership(crate::lanes::Ownership),
    Held(Vec<crate::lanes::HeldLane>),
}

type Reply = oneshot::Sender<Result<Done>>;

/// The handle every clone of the store shares.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<(Op, Reply)>,
}

impl Writer {
    /// Opens the write connection to `path` and starts the writer thread.
    pub(crate) fn start(path: &std::path::Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Savepoint sub-journals in memory, not in temporary files.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", SAFETY_NET_FRAMES)?;
        // A text or row deleted is overwritten with zeros in its page (not in
        // whole freed pages, which would double an image's writes).
        conn.pragma_update(None, "secure_delete", "FAST")?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let checkpointer = Checkpointer::start(path)?;
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, rx, &checkpointer))
            .map_err(|e| Error::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Runs `op` in the next group and waits for its commit.
    pub(crate) async fn run(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

/// The writer thread: a group is whatever is queued when the last one ends.
fn run(mut conn: Connection, mut rx: mpsc::Receiver<(Op, Reply)>, checkpointer: &Checkpointer) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut full_sync = true;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|(op, _)| op.must_be_durable());
        if durable != full_sync {
            // Prepared once and kept: the level changes up to twice per send.
            let sql = if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            match conn.prepare_cached(sql).and_then(|mut s| s.execute([])) {
                Ok(_) => full_sync = durable,
                // A group that must be durable is not committed without its
                // fsync: its callers hear the error instead.
                Err(e) if durable => {
                    tracing::error!(error = %e, "store: cannot make this group durable");
                    for (_, reply) in batch.drain(..) {
                        let _ = reply.send(Err(Error::Commit(format!(
                            "cannot set synchronous = FULL: {e}"
                        ))));
                    }
                    continue;
                }
                Err(e) => tracing::error!(error = %e, "store: cannot set synchronous"),
            }
        }
        let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.drain(..).unzip();
        match apply_group(&mut conn, ops) {
            Ok(results) => {
                checkpointer.poke();
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                let frames = checkpointer.frames();
                if frames >= CHECKPOINT_WHEN_BUSY_FRAMES
                    || (frames >= CHECKPOINT_WHEN_IDLE_FRAMES && rx.is_empty())
                {
                    match super::checkpointer::passive(&conn) {
                        Ok(Some((frames, copied))) => checkpointer.checkpointed(frames, copied),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(error = %e, "store: checkpoint skipped"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store: a write group was rolled back");
                let answer = || match &e {
                    Error::Unavailable(why) => Error::Unavailable(why.clone()),
                    other => Error::Commit(other.to_string()),
                };
                for reply in replies {
                    let _ = reply.send(Err(answer()));
                }
            }
        }
    }
}

/// One transaction for the whole group, without savepoints (copying every page
/// an operation touches into a sub-journal: dropping them took the writer from
/// 93 to 62 – 77 µs of CPU per send in the load harness). A single statement is atomic by itself in SQLite, so an operation of
/// one statement that fails (a duplicate key name) fails alone. An operation of
/// several statements can only fail for reasons that would fail the others too
/// (its expected refusals, such as a quota or an idempotency conflict, are read
/// before anything is written and are not errors), so its error rolls back the
/// whole group and every caller in it hears it: nothing half-done is committed,
/// and nobody is told "accepted" for a change that was rolled back.
fn apply_group(conn: &mut Connection, ops: Vec<Op>) -> Result<Vec<Result<Done>>> {
    // IMMEDIATE: the write lock is taken at BEGIN, where the busy timeout waits
    // for another process's writer (a second gateway, `tiktok-dm keys create`).
    // A DEFERRED group reads first and asks for the lock at its first write;
    // if another connection committed in between, SQLite refuses at once with
    // "database is locked" (its snapshot is stale), whatever the timeout.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let several = op.has_several_statements();
        let result = apply(&mut tx, op);
        match result {
            // Dropping `tx` rolls the group back.
            Err(e) if several => return Err(e),
            result => results.push(result),
        }
    }
    tx.commit()?;
    Ok(results)
}

fn apply(c: &mut Transaction<'_>, op: Op) -> Result<Done> {
    match op {
        Op::CreateKey(new, now) => create_key(c, new, now).map(Done::Key),
        Op::RevokeKey(name, now) => {
            let n = c
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
                )?
                .execute(params![now, name])?;
            if n == 1 {
                super::webhooks::drop_open_deliveries_of_key(c, &name)?;
            }
            Ok(Done::Flag(n == 1))
        }
        Op::Accounts(op) => op.apply(c),
        Op::Enqueue(request, windows, now) => {
            enqueue(c, request, &windows, now).map(Done::Enqueued)
        }
        Op::Lanes(op) => op.apply(c),
        Op::Reschedule {
            claim,
            at,
            transmitted,
            error,
            now,
        } => {
            let n = c.prepare_cached("UPDATE outbox SET state = 'accepted', next_attempt_at = ?1, error = ?2, locked_until = NULL, updated_at = ?3, transmissions = transmissions + ?6 WHERE id = ?4 AND claim_token = ?5 AND state = 'sending'")?
                .execute(params![at, error, now, claim.id, claim.token, i64::from(transmitted)])?;
            Ok(Done::Flag(n == 1))
        }
        Op::Release { claim, at } => {
            let n = c.prepare_cached("UPDATE outbox SET state = 'accepted', next_attempt_at = ?1, attempts = MAX(attempts - 1, 0), locked_until = NULL WHERE id = ?2 AND claim_token = ?3 AND state = 'sending'")?
                .execute(params![at, claim.id, claim.token])?;
            Ok(Done::Flag(n == 1))
        }
        Op::Renew { claim, until } => {
            let n = c
                .prepare_cached(
                    "UPDATE outbox SET locked_until = ?1 WHERE id = ?2 AND claim_token = ?3 AND state = 'sending'",
                )?
                .execute(params![until, claim.id, claim.token])?;
            Ok(Done::Flag(n == 1))
        }
        Op::Outcome(op) => op.apply(c),
        Op::DeleteExpired { before, max } => {
            super::retention::delete_expired(c, before, max).map(Done::Expired)
        }
        Op::PutKeyCheck(value) => super::meta::put_key_check(c, &value).map(Done::Bytes),
        Op::Events(op) => op.apply(c),
        Op::Webhooks(op) => op.apply(c),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn create_key(c: &Connection, new: NewApiKey, now: i64) -> Result<ApiKey> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO api_keys (name, prefix, key_hash, daily_limit, monthly_limit, account, created_at, any_account) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            new.name,
            new.prefix,
            &new.key_hash[..],
            new.daily_limit.map(i64::from),
            new.monthly_limit.map(i64::from),
            new.accounts.first(),
            now,
            new.any_account
        ]);
    match inserted {
        Ok(_) => {
            let id = c.last_insert_rowid();
            let mut bind = c.prepare_cached(
                "INSERT OR IGNORE INTO api_key_accounts (api_key_id, position, account) VALUES (?1, ?2, ?3)",
            )?;
            for (position, account) in new.accounts.iter().enumerate() {
                bind.execute(params![id, position as i64, account])?;
            }
            Ok(ApiKey::created(id, new, now))
        }
        Err(e) if is_unique_violation(&e) => {
            Err(Error::Duplicate(format!("an API key named {:?}", new.name)))
        }
        Err(e) => Err(e.into()),
    }
}

fn enqueue(
    c: &Connection,
    mut request: NewRequest,
    windows: &[QuotaWindow],
    now: i64,
) -> Result<Enqueued> {
    if let Some(refused) = refusal(c, &request, windows)? {
        return Ok(refused);
    }
    let day_start = now - now.rem_euclid(DAY_MS);
    let month_start = month_start(now);
    let (image_bytes, first_id) = insert(c, &request, now, day_start, month_start)?;
    let claimed = first_id
        .and_then(|id| OutboxMessage::claimed_first(id, &mut request, now))
        .map(Box::new);
    let count = i64::try_from(request.messages.len()).unwrap_or(i64::MAX);
    let totals = reserve(
        c,
        request.api_key_id,
        (day_start, month_start),
        count,
        image_bytes,
    )?;
    let mut used = Vec::with_capacity(windows.len());
    for w in windows {
        used.push(match period_of(w) {
            "month" if w.start == month_start => totals.month,
            "day" if w.start == day_start => totals.today,
            _ => window_used(c, request.api_key_id, w)?,
        });
    }
    Ok(Enqueued::accepted(
        request,
        now,
        image_bytes,
        claimed,
        totals,
        used,
    ))
}

/// Why `request` cannot be accepted, if it cannot: its key is revoked, its
/// idempotency key was used before (a replay or a conflict), or a window
/// would be exceeded.
fn refusal(
    c: &Connection,
    request: &NewRequest,
    windows: &[QuotaWindow],
) -> Result<Option<Enqueued>> {
    let live = c
        .prepare_cached("SELECT revoked_at IS NULL FROM api_keys WHERE id = ?1")?
        .query_row(params![request.api_key_id], |r| r.get::<_, bool>(0))
        .optional()?;
    if live != Some(true) {
        return Ok(Some(Enqueued::KeyRevoked));
    }
    if let Some(key) = &request.idempotency_key {
        let repeat = idempotent_repeat(c, request.api_key_id, key, &request.request_hash)?;
        if repeat.is_some() {
            return Ok(repeat);
        }
    }
    let wanted = request.messages.len() as u64;
    for w in windows {
        let used = window_used(c, request.api_key_id, w)?;
        if used + wanted > w.limit {
            return Ok(Some(Enqueued::QuotaExceeded {
                window: w.name,
                limit: w.limit,
                used,
                resets_at: w.resets_at,
            }));
        }
    }
    Ok(None)
}

/// Writes the request and its outbox rows: the image bytes it holds, and the
/// first message's row id when it is claimed with the acceptance.
fn insert(
    c: &Connection,
    request: &NewRequest,
    now: i64,
    day_start: i64,
    month_start: i64,
) -> Result<(i64, Option<i64>)> {
    let (conversation_id, conversation_short_id, inbox_type) = target_columns(&request.target);
    c.prepare_cached(
        "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start, inbox_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        request.id,
        request.api_key_id,
        request.idempotency_key,
        request.request_hash,
        request.account,
        request.session_sealed,
        conversation_id,
        conversation_short_id,
        now,
        day_start,
        month_start,
        inbox_type
    ])?;
    let mut image_bytes = 0i64;
    let mut insert = c.prepare_cached(
        "INSERT INTO outbox (request_id, position, kind, client_message_id, text, image, image_bytes, state, next_attempt_at, api_key_id, created_at, updated_at, locked_until, attempts, claim_token, lane)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?10, ?8, ?9, ?8, ?8, ?11, ?12, ?13, ?14)",
    )?;
    let mut first_id = None;
    for (row, m) in outbox_rows(request, now).iter().zip(&request.messages) {
        image_bytes += row.image_bytes;
        insert.execute(params![
            request.id,
            row.position,
            row.kind,
            m.client_message_id.as_str(),
            row.text,
            row.image,
            row.image_bytes,
            now,
            request.api_key_id,
            row.state,
            row.locked_until,
            row.attempts,
            row.claim_token,
            request.lane,
        ])?;
        if row.locked_until.is_some() {
            first_id = Some(c.last_insert_rowid());
        }
    }
    Ok((image_bytes, first_id))
}

/// Adds `count` messages and `image_bytes` to the key's day, month and
/// all-time counters; the totals after.
fn reserve(
    c: &Connection,
    api_key_id: i64,
    (day_start, month_start): (i64, i64),
    count: i64,
    image_bytes: i64,
) -> Result<UsageTotals> {
    let mut totals = UsageTotals::default();
    let mut bump = c.prepare_cached(
        "INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
         VALUES (?1, 'day', ?2, ?4, ?5), (?1, 'month', ?3, ?4, ?5), (?1, 'all', 0, ?4, ?5)
         ON CONFLICT (api_key_id, period, start) DO UPDATE SET
            messages = messages + excluded.messages,
            image_bytes = image_bytes + excluded.image_bytes
         RETURNING period, messages, image_bytes",
    )?;
    let mut rows = bump.query(params![
        api_key_id,
        day_start,
        month_start,
        count,
        image_bytes
    ])?;
    while let Some(row) = rows.next()? {
        let period: String = row.get(0)?;
        add_counter(&mut totals, &period, row.get(1)?, row.get(2)?);
    }
    Ok(totals)
}

/// Messages counted in a quota window (the writer checks it, readers report it).
pub(crate) fn window_used(c: &Connection, api_key_id: i64, window: &QuotaWindow) -> Result<u64> {
    let used: Option<i64> = c
        .prepare_cached(
            "SELECT messages FROM usage_counters WHERE api_key_id = ?1 AND period = ?2 AND start = ?3",
        )?
        .query_row(
            params![api_key_id, period_of(window), window.start],
            |r| r.get(0),
        )
        .optional()?;
    Ok(used.map_or(0, count))
}

/// What the request kept under the idempotency key `key` makes of one with
/// `request_hash`: its replay, a conflict, or `None` (the key is new).
pub(super) fn idempotent_repeat(
    c: &Connection,
    api_key_id: i64,
    key: &str,
    request_hash: &str,
) -> Result<Option<Enqueued>> {
    let existing: Option<(String, String)> = c
        .prepare_cached(
            "SELECT id, request_hash FROM requests WHERE api_key_id = ?1 AND idempotency_key = ?2",
        )?
        .query_row(params![api_key_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(existing.map(|(id, hash)| {
        if hash == request_hash {
            Enqueued::Replay { request_id: id }
        } else {
            Enqueued::IdempotencyConflict
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_request(id: &str, api_key_id: i64) -> Op {
        Op::Enqueue(
            NewRequest {
                id: id.into(),
                api_key_id,
                idempotency_key: None,
                request_hash: "h".into(),
                account: None,
                session_sealed: None,
                lane: "session:1".into(),
                target: Target::parse("0:1:1:2", "42").unwrap(),
                messages: vec![NewMessage {
                    client_message_id: ClientMessageId::from_random_bytes([id.len() as u8; 16]),
                    content: Content::Text(MessageText::parse("hi").unwrap()),
                }],
                claim_first_ms: None,
            },
            Vec::new(),
            10,
        )
    }

    fn key(name: &str) -> Op {
        Op::CreateKey(
            NewApiKey {
                name: name.into(),
                prefix: format!("tdm_{name}"),
                key_hash: [name.len() as u8; 32],
                daily_limit: None,
                monthly_limit: None,
                accounts: Vec::new(),
                any_account: false,
            },
            1,
        )
    }

    fn count(c: &Connection, table: &str) -> i64 {
        c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// A one-statement operation that fails fails alone; a several-statement
    /// one that fails takes its whole group back, so no caller is told
    /// "accepted" for something rolled back and nothing is left half-written.
    #[test]
    fn a_failure_rolls_back_the_operation_or_its_whole_group() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        let results = apply_group(&mut c, vec![key("a"), key("a"), key("bb")]).unwrap();
        assert!(matches!(results[1], Err(Error::Duplicate(_))));
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(count(&c, "api_keys"), 2);

        let results = apply_group(&mut c, vec![text_request("ok", 1), text_request("ok", 1)]);
        assert!(
            results.is_err(),
            "an enqueue whose request id is taken fails"
        );
        assert_eq!(
            (count(&c, "requests"), count(&c, "outbox")),
            (0, 0),
            "the valid one is rolled back too"
        );

        let results = apply_group(&mut c, vec![text_request("ok", 1), key("ccc")]).unwrap();
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(
            (
                count(&c, "requests"),
                count(&c, "outbox"),
                count(&c, "api_keys")
            ),
            (1, 1, 3)
        );
    }

    /// The claim and the depth count read small partial indexes of pending
    /// messages, not the whole outbox.
    #[test]
    fn pending_messages_are_found_through_the_partial_index() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
        for sql in [
            super::super::lanes::CLAIM_SQL,
            "SELECT COUNT(*) FROM outbox WHERE state IN ('accepted', 'sending')",
        ] {
            let mut plan = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let zeros = vec![0; plan.parameter_count()];
            let steps: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(zeros), |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            // The claim starts from the claimer's leases and reads each
            // lane's pending rows through `outbox_lanes`, partial as well.
            let outbox = steps
                .iter()
                .find(|s| s.contains(" o ") || s.contains(" outbox "))
                .unwrap();
            assert!(
                outbox.contains("USING INDEX outbox_pending")
                    || outbox.contains("USING COVERING INDEX outbox_pending")
                    || outbox.contains("USING INDEX outbox_lanes"),
                "{sql}: {steps:?}"
            );
            assert!(
                !steps
                    .iter()
                    .any(|s| s.starts_with("SCAN") && !s.contains("INDEX")),
                "{sql}: {steps:?}"
            );
        }
    }
}
