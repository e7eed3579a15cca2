//! Group commit for acceptances: one writer task per store owns a connection,
//! takes the acceptances waiting (up to [`MAX_BATCH`]) and runs them in one
//! transaction in two round trips, each a pipeline of multi-row (`unnest`)
//! statements:
//!
//! 1. BEGIN; share-lock the batch's API keys (a revocation waits for the
//!    commit, or the batch sees it); lock the batch's counter rows (an upsert
//!    that creates missing ones; rows in key, then period order, as `finish`
//!    locks them, so neither deadlocks); read the idempotency keys used before.
//! 2. The requests, their outbox rows, the counters' increments, COMMIT.
//!
//! Between the two, each acceptance is decided in order against the locked
//! counters (so concurrent acceptances, from any process, never pass a limit)
//! and the keys read: a refusal (revoked, quota, a repeat) is an answer, not an
//! error, and writes nothing. A second request with an idempotency key already
//! in the batch waits for the next batch, where the first is committed and
//! answers it. Each caller hears its answer only after the COMMIT. Should any
//! statement fail (a request id taken, an idempotency key another process
//! inserted meanwhile, the server gone), the whole batch rolls back and each
//! of its requests runs alone ([`alone`]), so one bad request fails alone.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::writes::{CounterKey, Periods, counter_columns};
use crate::columns::{outbox_rows, target_columns};
use crate::counters::{add_counter, period_of};
use crate::error::{Error, Result};
use crate::types::*;

/// Acceptances per transaction, at most.
const MAX_BATCH: usize = 512;

/// Locks counter rows (key ids, periods, starts), creating missing ones, in
/// one order for every caller, and reads them: a no-op update locks an
/// existing row. An unknown or revoked key has none (it is refused). The
/// order is the statement's own (`ORDER BY`): the join with `api_keys` may
/// hand the rows on in another order than the arrays', and two acceptances
/// locking two rows in opposite orders deadlocked (seen once in the batch
/// tests, three-way).
pub(super) const LOCK_COUNTERS: &str =
    "INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
     SELECT k, p, s, 0, 0 FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS t(k, p, s)
     WHERE EXISTS (SELECT 1 FROM api_keys a WHERE a.id = t.k AND a.revoked_at IS NULL)
     ORDER BY k, p, s
     ON CONFLICT (api_key_id, period, start) DO UPDATE SET messages = usage_counters.messages
     RETURNING api_key_id, period, start, messages, image_bytes";

/// One statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);
/// An acceptance waiting for its batch.
struct Job {
    request: NewRequest,
    windows: Vec<QuotaWindow>,
    now: i64,
    reply: oneshot::Sender<Result<Enqueued>>,
}

/// The handle every clone of the store shares; the writer task ends when the
/// last one is dropped.
#[derive(Clone, Debug)]
pub(super) struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the writer task, whose connection comes from `pool`.
    pub(super) fn start(pool: Pool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Accepts `request` in the next batch and waits for its commit.
    pub(super) async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            windows: windows.to_vec(),
            now,
            reply,
        };
        self.tx.send(job).await.map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

/// Whether every window is the current day or month at `now`, as the gateway
/// builds them: only those are checked against the locked counters; a request
/// with another window is accepted [`alone`].
pub(super) fn fits(windows: &[QuotaWindow], now: i64) -> bool {
    let periods = Periods::at(now);
    windows.iter().all(|w| match period_of(w) {
        "day" => w.start == periods.day_start,
        _ => w.start == periods.month_start,
    })
}

/// The writer task: a batch is what waits when the last one ends, and the
/// requests a batch put off (a second use of an idempotency key) go first.
async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>) {
    let mut conn: Option<Object> = None;
    let mut later: Vec<Job> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut later);
        if batch.is_empty() {
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match pool.get().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %Error::from(e), "store: no connection for a batch");
                    batch.into_iter().for_each(|job| spawn_alone(&pool, job));
                    continue;
                }
            },
        };
        match group(&c, batch).await {
            Ok(put_off) => {
                later = put_off;
                conn = Some(c);
            }
            Err((e, batch)) => {
                tracing::warn!(error = %e, n = batch.len(), "store: a batch rolled back; its requests run alone");
                // Its transaction may still be open: closed, not pooled.
                drop(Object::take(c));
                batch.into_iter().for_each(|job| spawn_alone(&pool, job));
            }
        }
    }
}

/// What a batch decided for one of its requests.
enum Fate {
    /// A refusal or a repeat: nothing written.
    Answer(Enqueued),
    /// Written: the key's totals and the windows' counts after it.
    Accept { totals: UsageTotals, used: Vec<u64> },
    /// Its idempotency key is already in this batch: the next batch answers.
    Later,
}

/// Runs one batch, answers its callers, and gives back those put off; on an
/// error, the batch (unanswered) with it, its transaction perhaps still open.
async fn group(c: &Object, jobs: Vec<Job>) -> std::result::Result<Vec<Job>, (Error, Vec<Job>)> {
    let (fates, first_ids) = match decide_and_write(c, &jobs).await {
        Ok(done) => done,
        Err(e) => return Err((e, jobs)),
    };
    let mut later = Vec::new();
    for (job, fate) in jobs.into_iter().zip(fates) {
        let Job {
            mut request,
            windows,
            now,
            reply,
        } = job;
        let answer = match fate {
            Fate::Answer(answer) => answer,
            Fate::Later => {
                later.push(Job {
                    request,
                    windows,
                    now,
                    reply,
                });
                continue;
            }
            Fate::Accept { totals, used } => {
                let image_bytes = outbox_rows(&request, now)
                    .iter()
                    .map(|r| r.image_bytes)
                    .sum();
                let claimed = first_ids
                    .get(&request.id)
                    .and_then(|&id| OutboxMessage::claimed_first(id, &mut request, now))
                    .map(Box::new);
                Enqueued::accepted(request, now, image_bytes, claimed, totals, used)
            }
        };
        let _ = reply.send(Ok(answer));
    }
    Ok(later)
}

/// Both round trips: what each request's fate is, and the row ids of the
/// first messages claimed with their acceptance, by request id.
async fn decide_and_write(c: &Object, jobs: &[Job]) -> Result<(Vec<Fate>, HashMap<String, i64>)> {
    let locked = lock(c, jobs).await?;
    let fates = decide(jobs, locked);
    let accepted: Vec<&Job> = jobs
        .iter()
        .zip(&fates)
        .filter(|(_, f)| matches!(f, Fate::Accept { .. }))
        .map(|(j, _)| j)
        .collect();
    if accepted.is_empty() {
        c.batch_execute("ROLLBACK").await?;
        return Ok((fates, HashMap::new()));
    }
    let first_ids = write(c, &accepted).await?;
    Ok((fates, first_ids))
}

/// What the first round trip read, under its locks.
struct Locked {
    /// Keys not revoked.
    live: HashSet<i64>,
    /// Counter rows: messages, image bytes.
    counters: HashMap<CounterKey, (i64, i64)>,
    /// Requests with the batch's idempotency keys: id and content hash.
    earlier: HashMap<(i64, String), (String, String)>,
}

/// The first round trip: BEGIN, the keys' and counters' locks, the
/// idempotency lookup.
async fn lock(c: &Object, jobs: &[Job]) -> Result<Locked> {
    let mut keys: Vec<i64> = jobs.iter().map(|j| j.request.api_key_id).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut counters: Vec<CounterKey> = jobs
        .iter()
        .flat_map(|j| Periods::at(j.now).counters(j.request.api_key_id))
        .collect();
    counters.sort_unstable();
    counters.dedup();
    let (ck, cp, cs) = counter_columns(&counters);
    let (ik, iv): (Vec<i64>, Vec<&str>) = jobs
        .iter()
        .filter_map(|j| {
            let key = j.request.idempotency_key.as_deref()?;
            Some((j.request.api_key_id, key))
        })
        .unzip();
    let keys_s = c
        .prepare_cached(
            "SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL ORDER BY id FOR SHARE",
        )
        .await?;
    let counters_s = c.prepare_cached(LOCK_COUNTERS).await?;
    let earlier_s = c
        .prepare_cached(
            "SELECT r.api_key_id, r.idempotency_key, r.id, r.request_hash
             FROM requests r JOIN unnest($1::bigint[], $2::text[]) AS t(k, i)
               ON r.api_key_id = t.k AND r.idempotency_key = t.i",
        )
        .await?;
    let key_params: [Param<'_>; 1] = [&keys];
    let counter_params: [Param<'_>; 3] = [&ck, &cp, &cs];
    let earlier_params: [Param<'_>; 2] = [&ik, &iv];
    let (begun, live, counted, earlier) = tokio::join!(
        c.batch_execute("BEGIN"),
        c.query(&keys_s, &key_params),
        c.query(&counters_s, &counter_params),
        async {
            if ik.is_empty() {
                Ok(Vec::new())
            } else {
                c.query(&earlier_s, &earlier_params).await
            }
        },
    );
    begun?;
    read_locked(live?, counted?, earlier?)
}

/// The first round trip's rows, as [`Locked`].
fn read_locked(
    live: Vec<tokio_postgres::Row>,
    counted: Vec<tokio_postgres::Row>,
    earlier: Vec<tokio_postgres::Row>,
) -> Result<Locked> {
    let mut locked = Locked {
        live: HashSet::with_capacity(live.len()),
        counters: HashMap::with_capacity(counted.len()),
        earlier: HashMap::with_capacity(earlier.len()),
    };
    for row in live {
        locked.live.insert(row.try_get(0)?);
    }
    for row in counted {
        let period: &'static str = match row.try_get::<_, &str>(1)? {
            "all" => "all",
            "day" => "day",
            "month" => "month",
            other => return Err(Error::Corrupt(format!("counter period {other:?}"))),
        };
        locked.counters.insert(
            (row.try_get(0)?, period, row.try_get(2)?),
            (row.try_get(3)?, row.try_get(4)?),
        );
    }
    for row in earlier {
        locked.earlier.insert(
            (row.try_get(0)?, row.try_get(1)?),
            (row.try_get(2)?, row.try_get(3)?),
        );
    }
    Ok(locked)
}

/// Each request's fate, in order, against the locked counters (which it
/// bumps for each acceptance).
fn decide(jobs: &[Job], mut locked: Locked) -> Vec<Fate> {
    let mut seen: HashSet<(i64, &str)> = HashSet::new();
    jobs.iter()
        .map(|job| {
            let r = &job.request;
            if !locked.live.contains(&r.api_key_id) {
                return Fate::Answer(Enqueued::KeyRevoked);
            }
            if let Some(key) = r.idempotency_key.as_deref() {
                if let Some((id, hash)) = locked.earlier.get(&(r.api_key_id, key.to_owned())) {
                    return Fate::Answer(if *hash == r.request_hash {
                        Enqueued::Replay {
                            request_id: id.clone(),
                        }
                    } else {
                        Enqueued::IdempotencyConflict
                    });
                }
                if !seen.insert((r.api_key_id, key)) {
                    return Fate::Later;
                }
            }
            quota(job, &mut locked.counters)
        })
        .collect()
}

/// The request's quota check against `counters`, which an acceptance bumps.
fn quota(job: &Job, counters: &mut HashMap<CounterKey, (i64, i64)>) -> Fate {
    let r = &job.request;
    let wanted = i64::try_from(r.messages.len()).unwrap_or(i64::MAX);
    let rows = Periods::at(job.now).counters(r.api_key_id);
    let value = |counters: &HashMap<CounterKey, (i64, i64)>, k: &CounterKey| {
        counters.get(k).copied().unwrap_or((0, 0))
    };
    for w in &job.windows {
        let row = if period_of(w) == "day" {
            rows[1]
        } else {
            rows[2]
        };
        let used = value(counters, &row).0;
        let limit = i64::try_from(w.limit).unwrap_or(i64::MAX);
        if used.saturating_add(wanted) > limit {
            return Fate::Answer(Enqueued::QuotaExceeded {
                window: w.name,
                limit: w.limit,
                used: crate::counters::count(used),
                resets_at: w.resets_at,
            });
        }
    }
    let image_bytes: i64 = r
        .messages
        .iter()
        .map(|m| match &m.content {
            Content::Image(bytes) => i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            Content::Text(_) => 0,
        })
        .sum();
    let mut totals = UsageTotals::default();
    for row in rows {
        let (m, b) = value(counters, &row);
        let bumped = (m.saturating_add(wanted), b.saturating_add(image_bytes));
        counters.insert(row, bumped);
        add_counter(&mut totals, row.1, bumped.0, bumped.1);
    }
    let used = job
        .windows
        .iter()
        .map(|w| match period_of(w) {
            "day" => totals.today,
            _ => totals.month,
        })
        .collect();
    Fate::Accept { totals, used }
}

/// The second round trip: the accepted requests, their outbox rows, the
/// counters' increments, and the COMMIT. The first messages claimed with
/// their acceptance: row id by request id.
async fn write(c: &Object, accepted: &[&Job]) -> Result<HashMap<String, i64>> {
    let requests = RequestColumns::of(accepted);
    let messages = MessageColumns::of(accepted);
    let bumps = Bumps::of(accepted);
    let (requests_s, messages_s, bumps_s) = statements(c).await?;
    let (request_params, message_params, bump_params) =
        (requests.params(), messages.params(), bumps.params());
    let (inserted, ids, bumped, committed) = tokio::join!(
        c.execute(&requests_s, &request_params),
        c.query(&messages_s, &message_params),
        c.execute(&bumps_s, &bump_params),
        // If a statement before it failed, this ends the transaction as a
        // ROLLBACK (its answer does not say so: the errors above do).
        c.batch_execute("COMMIT"),
    );
    inserted?;
    let ids = ids?;
    bumped?;
    committed?;
    let claimed: HashSet<&str> = accepted
        .iter()
        .filter(|j| j.request.claim_first_ms.is_some())
        .map(|j| j.request.id.as_str())
        .collect();
    let mut first_ids = HashMap::with_capacity(claimed.len());
    for row in ids {
        let request_id: &str = row.try_get(1)?;
        if row.try_get::<_, i64>(2)? == 0 && claimed.contains(request_id) {
            first_ids.insert(request_id.to_owned(), row.try_get(0)?);
        }
    }
    Ok(first_ids)
}

/// The second round trip's statements, prepared once per connection.
async fn statements(
    c: &Object,
) -> Result<(
    tokio_postgres::Statement,
    tokio_postgres::Statement,
    tokio_postgres::Statement,
)> {
    let requests = c
        .prepare_cached(
            "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start, inbox_type)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::int4[])",
        )
        .await?;
    // The claim token is the attempts' value: 1 for a message claimed with
    // its acceptance (its first claim), else 0.
    let messages = c
        .prepare_cached(
            "INSERT INTO outbox (request_id, position, kind, client_message_id, text, image, image_bytes, state, locked_until, attempts, next_attempt_at, api_key_id, created_at, updated_at, claim_token, lane)
             SELECT r, p, k, m, t, i, b, s, l, a, n, key, n, n, a, lane
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bigint[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])
               AS x(r, p, k, m, t, i, b, s, l, a, n, key, lane)
             RETURNING id, request_id, position",
        )
        .await?;
    let bumps = c
        .prepare_cached(
            "UPDATE usage_counters u SET messages = u.messages + d.m, image_bytes = u.image_bytes + d.b
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(k, p, s, m, b)
             WHERE u.api_key_id = d.k AND u.period = d.p AND u.start = d.s",
        )
        .await?;
    Ok((requests, messages, bumps))
}

/// The accepted requests' rows, a column each.
#[derive(Default)]
struct RequestColumns<'a> {
    id: Vec<&'a str>,
    key: Vec<i64>,
    idempotency_key: Vec<Option<&'a str>>,
    hash: Vec<&'a str>,
    account: Vec<Option<&'a str>>,
    session: Vec<Option<&'a [u8]>>,
    conversation_id: Vec<&'a str>,
    short_id: Vec<i64>,
    created_at: Vec<i64>,
    day_start: Vec<i64>,
    month_start: Vec<i64>,
    inbox_type: Vec<i32>,
}

impl<'a> RequestColumns<'a> {
    fn of(jobs: &[&'a Job]) -> Self {
        let mut c = Self::default();
        for job in jobs {
            let r = &job.request;
            let (conversation_id, short_id, inbox_type) = target_columns(&r.target);
            let periods = Periods::at(job.now);
            c.id.push(&r.id);
            c.key.push(r.api_key_id);
            c.idempotency_key.push(r.idempotency_key.as_deref());
            c.hash.push(&r.request_hash);
            c.account.push(r.account.as_deref());
            c.session.push(r.session_sealed.as_deref());
            c.conversation_id.push(conversation_id);
            c.short_id.push(short_id);
            c.created_at.push(job.now);
            c.day_start.push(periods.day_start);
            c.month_start.push(periods.month_start);
            c.inbox_type.push(inbox_type);
        }
        c
    }

    fn params(&self) -> [Param<'_>; 12] {
        [
            &self.id,
            &self.key,
            &self.idempotency_key,
            &self.hash,
            &self.account,
            &self.session,
            &self.conversation_id,
            &self.short_id,
            &self.created_at,
            &self.day_start,
            &self.month_start,
            &self.inbox_type,
        ]
    }
}

/// The accepted requests' outbox rows, a column each.
#[derive(Default)]
struct MessageColumns<'a> {
    request_id: Vec<&'a str>,
    position: Vec<i64>,
    kind: Vec<&'static str>,
    client_message_id: Vec<&'a str>,
    text: Vec<Option<&'a str>>,
    image: Vec<Option<&'a [u8]>>,
    image_bytes: Vec<i64>,
    state: Vec<&'static str>,
    locked_until: Vec<Option<i64>>,
    attempts: Vec<i64>,
    now: Vec<i64>,
    key: Vec<i64>,
    lane: Vec<&'a str>,
}

impl<'a> MessageColumns<'a> {
    fn of(jobs: &[&'a Job]) -> Self {
        let mut c = Self::default();
        for job in jobs {
            let r = &job.request;
            for (row, m) in outbox_rows(r, job.now).into_iter().zip(&r.messages) {
                c.request_id.push(&r.id);
                c.position.push(row.position);
                c.kind.push(row.kind);
                c.client_message_id.push(m.client_message_id.as_str());
                c.text.push(row.text);
                c.image.push(row.image);
                c.image_bytes.push(row.image_bytes);
                c.state.push(row.state);
                c.locked_until.push(row.locked_until);
                c.attempts.push(row.attempts);
                c.now.push(job.now);
                c.key.push(r.api_key_id);
                c.lane.push(&r.lane);
            }
        }
        c
    }

    fn params(&self) -> [Param<'_>; 13] {
        [
            &self.request_id,
            &self.position,
            &self.kind,
            &self.client_message_id,
            &self.text,
            &self.image,
            &self.image_bytes,
            &self.state,
            &self.locked_until,
            &self.attempts,
            &self.now,
            &self.key,
            &self.lane,
        ]
    }
}

/// The counters' increments, one per row.
#[derive(Default)]
struct Bumps {
    key: Vec<i64>,
    period: Vec<&'static str>,
    start: Vec<i64>,
    messages: Vec<i64>,
    image_bytes: Vec<i64>,
}

impl Bumps {
    fn of(jobs: &[&Job]) -> Self {
        let mut sums: HashMap<CounterKey, (i64, i64)> = HashMap::new();
        for job in jobs {
            let r = &job.request;
            let n = i64::try_from(r.messages.len()).unwrap_or(i64::MAX);
            let bytes: i64 = outbox_rows(r, job.now).iter().map(|x| x.image_bytes).sum();
            for row in Periods::at(job.now).counters(r.api_key_id) {
                let sum = sums.entry(row).or_default();
                *sum = (sum.0.saturating_add(n), sum.1.saturating_add(bytes));
            }
        }
        let mut b = Self::default();
        for ((key, period, start), (messages, image_bytes)) in sums {
            b.key.push(key);
            b.period.push(period);
            b.start.push(start);
            b.messages.push(messages);
            b.image_bytes.push(image_bytes);
        }
        b
    }

    fn params(&self) -> [Param<'_>; 5] {
        [
            &self.key,
            &self.period,
            &self.start,
            &self.messages,
            &self.image_bytes,
        ]
    }
}

/// Runs `job` [`alone`] in a task of its own and answers it.
fn spawn_alone(pool: &Pool, job: Job) {
    let pool = pool.clone();
    tokio::spawn(async move {
        let answer = alone(&pool, job.request, &job.windows, job.now).await;
        let _ = job.reply.send(answer);
    });
}

/// Accepts one request in a transaction of its own (`writes::enqueue`): a
/// request whose windows the batch does not check, or one of a batch that
/// rolled back.
pub(super) async fn alone(
    pool: &Pool,
    request: NewRequest,
    windows: &[QuotaWindow],
    now: i64,
) -> Result<Enqueued> {
    let twin = request
        .idempotency_key
        .clone()
        .map(|k| (request.api_key_id, k, request.request_hash.clone()));
    let (id, hash) = (request.id.clone(), request.request_hash.clone());
    let c = pool.get().await?;
    let accepted = match super::writes::enqueue(&c, request, windows, now).await {
        Ok(accepted) => accepted,
        Err(e) => {
            // Its transaction may still be open: the connection is closed
            // rather than given back to the pool.
            drop(Object::take(c));
            return stored_before(pool, &id, &hash).await.unwrap_or(Err(e));
        }
    };
    match accepted {
        Some(e) => Ok(e),
        None => {
            let (key_id, key, hash) = twin.ok_or_else(|| {
                Error::Corrupt("an idempotency race without an idempotency key".into())
            })?;
            super::writes::idempotent_repeat(&c, key_id, &key, &hash)
                .await?
                .ok_or_else(|| {
                    Error::Corrupt("the first request with this idempotency key vanished".into())
                })
        }
    }
}

/// A request that failed to run alone may have been committed by its group
/// after all (the group's COMMIT went through, its answer was lost): then it
/// was accepted, and answers as a replay of itself rather than an error a
/// client would retry with a second copy. `None` when it is not there (or
/// the database cannot say).
async fn stored_before(pool: &Pool, id: &str, hash: &str) -> Option<Result<Enqueued>> {
    let c = pool.get().await.ok()?;
    let row = c
        .query_opt("SELECT request_hash FROM requests WHERE id = $1", &[&id])
        .await
        .ok()??;
    let stored: String = row.try_get(0).ok()?;
    (stored == hash).then(|| {
        Ok(Enqueued::Replay {
            request_id: id.to_owned(),
        })
    })
}
