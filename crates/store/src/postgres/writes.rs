//! The PostgreSQL backend's transactions that write: an acceptance, an outcome
//! that ends a message, the session wipe.

use crate::columns::{outbox_rows, target_columns};
use crate::counters::{
    DAY_MS, add_counter, count, month_start, not_attempted_error, period_of, quota_returned,
};
use crate::error::Result;
use crate::types::*;

/// A transaction on a pooled connection.
pub(super) type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// A pooled connection.
pub(super) type Conn = deadpool_postgres::Client;

/// Ends the open transaction without keeping anything.
async fn roll_back(c: &Conn) -> Result<()> {
    Ok(c.batch_execute("ROLLBACK").await?)
}

/// Accepts a request in one transaction, which this opens and ends itself, in
/// as few round trips as it can: BEGIN goes out with the key's check and the
/// idempotency lookup, and the writes go out together, with the COMMIT too
/// when the key has no limit (nothing can refuse the request after the first
/// trip, and its counter rows are then locked only while the server runs the
/// statements, not for a round trip to the gateway). `None`: another
/// acceptance with the same idempotency key committed first (the unique index
/// said so); answer as for a repeat. On an error the transaction may still be
/// open: the caller must not give the connection back to the pool.
pub(super) async fn enqueue(
    c: &Conn,
    mut request: NewRequest,
    windows: &[QuotaWindow],
    now: i64,
) -> Result<Option<Enqueued>> {
    let periods = Periods::at(now);
    if let Some(refused) = begin(c, &request, periods).await? {
        return Ok(Some(refused));
    }
    let limits = match limits(c, &request, windows, periods).await? {
        Ok(limits) => limits,
        Err(refused) => return Ok(Some(refused)),
    };
    let Some(written) = write(c, &request, now, periods, limits).await? else {
        return Ok(None);
    };
    let (totals, used) = match usage(c, &request, windows, periods, &written.counters).await? {
        Ok(usage) => usage,
        Err(refused) => return Ok(Some(refused)),
    };
    if !written.committed {
        c.batch_execute("COMMIT").await?;
    }
    let claimed = written
        .first_id
        .and_then(|id| OutboxMessage::claimed_first(id, &mut request, now))
        .map(Box::new);
    Ok(Some(Enqueued::accepted(
        request,
        now,
        written.image_bytes,
        claimed,
        totals,
        used,
    )))
}

/// A counter row's key: API key id, period, period start.
pub(super) type CounterKey = (i64, &'static str, i64);

/// Counter keys as the three arrays `batch::LOCK_COUNTERS` takes.
pub(super) fn counter_columns(rows: &[CounterKey]) -> (Vec<i64>, Vec<&'static str>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for &(key, period, start) in rows {
        columns.0.push(key);
        columns.1.push(period);
        columns.2.push(start);
    }
    columns
}

/// The current day's and month's starts, as the counters key them.
#[derive(Clone, Copy)]
pub(super) struct Periods {
    pub(super) day_start: i64,
    pub(super) month_start: i64,
}

impl Periods {
    pub(super) fn at(now: i64) -> Self {
        Self {
            day_start: now - now.rem_euclid(DAY_MS),
            month_start: month_start(now),
        }
    }

    /// The counter rows an acceptance of `key` at these periods bumps, in
    /// the order they are locked.
    pub(super) fn counters(self, key: i64) -> [CounterKey; 3] {
        [
            (key, "all", 0),
            (key, "day", self.day_start),
            (key, "month", self.month_start),
        ]
    }
}

/// Opens the transaction together with the key's check, the lock on its
/// counter rows and the idempotency lookup (one round trip); a refusal or a
/// repeat ends it. The counters are locked before the request row is written,
/// as a group of acceptances (`batch.rs`) locks them: an acceptance that wrote
/// an idempotency key first and then waited for the counters a group holds,
/// while the group's insert of the same key waited for it, would deadlock.
async fn begin(c: &Conn, request: &NewRequest, periods: Periods) -> Result<Option<Enqueued>> {
    // A share lock on the key's row: a revocation (an UPDATE of the row) waits
    // for this acceptance to end, or this one sees it; acceptances of one key
    // do not wait for each other here.
    let s = c
        .prepare_cached("SELECT revoked_at IS NULL FROM api_keys WHERE id = $1 FOR SHARE")
        .await?;
    let lock = c.prepare_cached(super::batch::LOCK_COUNTERS).await?;
    let repeat = async {
        match &request.idempotency_key {
            Some(key) => idempotent_repeat(c, request.api_key_id, key, &request.request_hash).await,
            None => Ok(None),
        }
    };
    let key_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&request.api_key_id];
    let (keys, names, starts) = counter_columns(&periods.counters(request.api_key_id));
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&keys, &names, &starts];
    let (begun, live, locked, repeat) = tokio::join!(
        c.batch_execute("BEGIN"),
        c.query_opt(&s, &key_params),
        c.query(&lock, &lock_params),
        repeat,
    );
    begun?;
    locked?;
    let live: Option<bool> = live?.map(|r| r.try_get(0)).transpose()?;
    if live != Some(true) {
        roll_back(c).await?;
        return Ok(Some(Enqueued::KeyRevoked));
    }
    if let Some(repeat) = repeat? {
        roll_back(c).await?;
        return Ok(Some(repeat));
    }
    Ok(None)
}

/// The daily and monthly limits the counter upsert enforces (`i64::MAX` for
/// none), or the refusal when the request cannot fit: a window that is not
/// the current day or month (never, as the gateway builds them) is checked by
/// a read, as is a request larger than a whole window.
async fn limits(
    c: &Conn,
    request: &NewRequest,
    windows: &[QuotaWindow],
    periods: Periods,
) -> Result<std::result::Result<(i64, i64), Enqueued>> {
    let wanted = request.messages.len() as u64;
    let (mut daily, mut monthly) = (i64::MAX, i64::MAX);
    for w in windows {
        let limit = i64::try_from(w.limit).unwrap_or(i64::MAX);
        match period_of(w) {
            "day" if w.start == periods.day_start => daily = limit,
            "month" if w.start == periods.month_start => monthly = limit,
            _ => {
                let used = window_used(c, request.api_key_id, w).await?;
                if used + wanted > w.limit {
                    roll_back(c).await?;
                    return Ok(Err(exceeded(w, used)));
                }
            }
        }
        if wanted > w.limit {
            let used = window_used(c, request.api_key_id, w).await?;
            roll_back(c).await?;
            return Ok(Err(exceeded(w, used)));
        }
    }
    Ok(Ok((daily, monthly)))
}

/// What [`write`] wrote.
struct Written {
    /// The first message's row id, when it was claimed with the acceptance.
    first_id: Option<i64>,
    /// The counter rows the upsert changed (none for a window it refused).
    counters: Vec<tokio_postgres::Row>,
    /// Whether the COMMIT went out with the writes (a key without limits).
    committed: bool,
    /// The request's image bytes.
    image_bytes: i64,
}

/// The writes, pipelined on the connection: the request row, its outbox rows,
/// the counters' reservation (which is also the quota check), and the COMMIT
/// when nothing can refuse the request any more. `None`: another acceptance
/// took the idempotency key first.
async fn write(
    c: &Conn,
    request: &NewRequest,
    now: i64,
    periods: Periods,
    (daily, monthly): (i64, i64),
) -> Result<Option<Written>> {
    let unlimited = daily == i64::MAX && monthly == i64::MAX;
    let (insert_request, insert_messages, bump) = write_statements(c, request).await?;
    let rows = outbox_rows(request, now);
    let client_message_ids: Vec<&str> = request
        .messages
        .iter()
        .map(|m| m.client_message_id.as_str())
        .collect();
    let image_bytes: i64 = rows.iter().map(|r| r.image_bytes).sum();
    let mut message_params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&request.id, &now, &request.api_key_id, &request.lane];
    for (row, id) in rows.iter().zip(&client_message_ids) {
        message_params.extend([
            &row.position as &(dyn tokio_postgres::types::ToSql + Sync),
            &row.kind,
            id,
            &row.text,
            &row.image,
            &row.image_bytes,
            &row.state,
            &row.locked_until,
            &row.attempts,
        ]);
    }
    let count = i64::try_from(request.messages.len()).unwrap_or(i64::MAX);
    let (conversation_id, conversation_short_id, inbox_type) = target_columns(&request.target);
    let Periods {
        day_start,
        month_start,
    } = periods;
    let request_params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
        &request.id,
        &request.api_key_id,
        &request.idempotency_key,
        &request.request_hash,
        &request.account,
        &request.session_sealed,
        &conversation_id,
        &conversation_short_id,
        &now,
        &day_start,
        &month_start,
        &inbox_type,
    ];
    let bump_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &request.api_key_id,
        &day_start,
        &month_start,
        &count,
        &image_bytes,
        &daily,
        &monthly,
    ];
    let commit = async {
        if unlimited {
            c.batch_execute("COMMIT").await.map(|()| true)
        } else {
            Ok(false)
        }
    };
    // They go out together (pipelined on the connection) and run in order; if
    // one fails, the transaction is aborted, the ones after it fail too, and a
    // COMMIT sent with them rolls back.
    let (inserted, ids, counters, committed) = tokio::join!(
        c.execute(&insert_request, &request_params),
        c.query(&insert_messages, &message_params),
        c.query(&bump, &bump_params),
        commit,
    );
    let committed = committed?;
    let Some((ids, counters)) = pipelined(c, request, committed, inserted, ids, counters).await?
    else {
        return Ok(None);
    };
    let mut first_id = None;
    for row in ids {
        if request.claim_first_ms.is_some() && row.try_get::<_, i64>(1)? == 0 {
            first_id = Some(row.try_get::<_, i64>(0)?);
        }
    }
    Ok(Some(Written {
        first_id,
        counters,
        committed,
        image_bytes,
    }))
}

/// The pipelined writes' results: the outbox ids and the counter rows, or
/// `None` when the request row met another acceptance's idempotency key. On a
/// failure the transaction is rolled back (unless its COMMIT went with the
/// writes, which then rolled it back itself).
async fn pipelined(
    c: &Conn,
    request: &NewRequest,
    committed: bool,
    inserted: std::result::Result<u64, tokio_postgres::Error>,
    ids: std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
    counters: std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
) -> Result<Option<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>)>> {
    let ended = || async move {
        if committed {
            Ok(())
        } else {
            roll_back(c).await
        }
    };
    match inserted {
        Ok(_) => {}
        Err(e)
            if request.idempotency_key.is_some()
                && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            ended().await?;
            return Ok(None);
        }
        Err(e) => {
            ended().await?;
            return Err(e.into());
        }
    }
    match (ids, counters) {
        (Ok(ids), Ok(counters)) => Ok(Some((ids, counters))),
        (Err(e), _) | (_, Err(e)) => {
            ended().await?;
            Err(e.into())
        }
    }
}

/// The acceptance's three statements: the request row, its outbox rows, and
/// the counters' upsert.
async fn write_statements(
    c: &Conn,
    request: &NewRequest,
) -> Result<(
    tokio_postgres::Statement,
    tokio_postgres::Statement,
    tokio_postgres::Statement,
)> {
    let insert_request = c
        .prepare_cached(
            "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start, inbox_type)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await?;
    let insert_messages = c
        .prepare_cached(&outbox_insert(request.messages.len()))
        .await?;
    // Last, so this key's counter rows stay locked only from here to the
    // commit: the reservation and the quota check are one statement, and a
    // counter that would pass its limit is left alone (no row comes back).
    // Rows in period order (all, day, month), as `finish` locks them.
    let bump = c
        .prepare_cached(
            "INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
             VALUES ($1, 'all', 0, $4, $5), ($1, 'day', $2, $4, $5), ($1, 'month', $3, $4, $5)
             ON CONFLICT (api_key_id, period, start) DO UPDATE SET
                messages = usage_counters.messages + excluded.messages,
                image_bytes = usage_counters.image_bytes + excluded.image_bytes
             WHERE usage_counters.period = 'all'
                OR (usage_counters.period = 'day' AND usage_counters.messages + excluded.messages <= $6)
                OR (usage_counters.period = 'month' AND usage_counters.messages + excluded.messages <= $7)
             RETURNING period, messages, image_bytes",
        )
        .await?;
    Ok((insert_request, insert_messages, bump))
}

/// The key's totals and each window's count after the reservation, or the
/// refusal (the transaction rolled back) when the upsert left a limited
/// window's counter alone because the request would pass its limit.
async fn usage(
    c: &Conn,
    request: &NewRequest,
    windows: &[QuotaWindow],
    periods: Periods,
    counters: &[tokio_postgres::Row],
) -> Result<std::result::Result<(UsageTotals, Vec<u64>), Enqueued>> {
    let mut totals = UsageTotals::default();
    let mut counted = [false; 3];
    for row in counters {
        let period: String = row.try_get(0)?;
        counted[match period.as_str() {
            "day" => 0,
            "month" => 1,
            _ => 2,
        }] = true;
        add_counter(&mut totals, &period, row.try_get(1)?, row.try_get(2)?);
    }
    if let Some(w) = windows.iter().find(|w| match period_of(w) {
        "day" => w.start == periods.day_start && !counted[0],
        _ => w.start == periods.month_start && !counted[1],
    }) {
        // Only a limited key gets here (an unlimited one counts every row).
        let used = window_used(c, request.api_key_id, w).await?;
        roll_back(c).await?;
        return Ok(Err(exceeded(w, used)));
    }
    let mut used = Vec::with_capacity(windows.len());
    for w in windows {
        used.push(match period_of(w) {
            "month" if w.start == periods.month_start => totals.month,
            "day" if w.start == periods.day_start => totals.today,
            _ => window_used(c, request.api_key_id, w).await?,
        });
    }
    Ok(Ok((totals, used)))
}

/// The outbox insert for `n` messages: `$1` request id, `$2` now, `$3` key
/// id, `$4` lane, then nine values per message.
fn outbox_insert(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO outbox (request_id, position, kind, client_message_id, text, image, image_bytes, state, locked_until, attempts, next_attempt_at, api_key_id, created_at, updated_at, claim_token, lane) VALUES ",
    );
    for i in 0..n {
        let b = 4 + i * 9;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            // The claim token is the attempts' value: 1 for a message
            // claimed with its acceptance (its first claim), else 0.
            "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $2, $3, $2, $2, ${}, $4)",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 9
        ));
    }
    sql.push_str(" RETURNING id, position");
    sql
}

/// The refusal for window `w` with `used` messages counted.
fn exceeded(w: &QuotaWindow, used: u64) -> Enqueued {
    Enqueued::QuotaExceeded {
        window: w.name,
        limit: w.limit,
        used,
        resets_at: w.resets_at,
    }
}

/// The answer to a request whose idempotency key `key` was used before: the
/// first request's id for the same content, a conflict for other content.
pub(super) async fn idempotent_repeat<C: deadpool_postgres::GenericClient>(
    c: &C,
    api_key_id: i64,
    key: &str,
    request_hash: &str,
) -> Result<Option<Enqueued>> {
    let s = c
        .prepare_cached(
            "SELECT id, request_hash FROM requests WHERE api_key_id = $1 AND idempotency_key = $2",
        )
        .await?;
    let Some(row) = c.query_opt(&s, &[&api_key_id, &key]).await? else {
        return Ok(None);
    };
    let (id, hash): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    Ok(Some(if hash == request_hash {
        Enqueued::Replay { request_id: id }
    } else {
        Enqueued::IdempotencyConflict
    }))
}

pub(super) async fn window_used<C: deadpool_postgres::GenericClient>(
    c: &C,
    api_key_id: i64,
    window: &QuotaWindow,
) -> Result<u64> {
    let s = c
        .prepare_cached(
            "SELECT messages FROM usage_counters WHERE api_key_id = $1 AND period = $2 AND start = $3",
        )
        .await?;
    let used: Option<i64> = c
        .query_opt(&s, &[&api_key_id, &period_of(window), &window.start])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(used.map_or(0, count))
}

pub(super) async fn finish(
    tx: &Tx<'_>,
    claim: Claim,
    state: State,
    error: &str,
    now: i64,
) -> Result<bool> {
    let id = claim.id;
    let s = tx
        .prepare_cached(
            "SELECT o.request_id, o.position, o.api_key_id, o.image_bytes, o.state, r.day_start, r.month_start
             FROM outbox o JOIN requests r ON r.id = o.request_id WHERE o.id = $1 AND o.claim_token = $2 FOR UPDATE OF o",
        )
        .await?;
    let Some(row) = tx.query_opt(&s, &[&id, &claim.token]).await? else {
        return Ok(false);
    };
    let (request_id, position, api_key_id, image_bytes): (String, i64, i64, i64) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    );
    let (was, day_start, month_start): (String, i64, i64) =
        (row.try_get(4)?, row.try_get(5)?, row.try_get(6)?);
    if State::parse(&was)? != State::Sending {
        return Ok(false);
    }
    // Other processes waiting to answer the request hear of it
    // (`notices.rs`), in the same statement.
    tx.execute(
        "WITH ended AS (
            UPDATE outbox SET state = $1, error = $2, locked_until = NULL, text = NULL, image = NULL, updated_at = $3
            WHERE id = $4 RETURNING request_id
         )
         SELECT pg_notify('tiktok_dm_outcomes', request_id) FROM ended",
        &[&state.as_str(), &error, &now, &id],
    )
    .await?;
    let (mut given_back, mut bytes_back) = quota_returned(state, image_bytes);
    // A message that did not end sent ends its request: the messages after it
    // will not be attempted, and give their quota back too.
    if state != State::Sent {
        let not_attempted = not_attempted_error();
        for r in tx
            .query(
                "UPDATE outbox SET state = 'failed', error = $1, text = NULL, image = NULL, updated_at = $2
                 WHERE request_id = $3 AND position > $4 AND state = 'accepted'
                 RETURNING image_bytes",
                &[&not_attempted, &now, &request_id, &position],
            )
            .await?
        {
            given_back += 1;
            bytes_back += r.try_get::<_, i64>(0)?;
        }
    }
    if given_back > 0 {
        // Counter rows are locked in one order everywhere (by period: all,
        // day, month), so this and an acceptance of the same key cannot
        // deadlock.
        tx.execute(
            "WITH locked AS (
                SELECT api_key_id, period, start FROM usage_counters
                WHERE api_key_id = $3 AND ((period = 'day' AND start = $4) OR (period = 'month' AND start = $5) OR period = 'all')
                ORDER BY period FOR UPDATE
             )
             UPDATE usage_counters u SET messages = GREATEST(u.messages - $1, 0), image_bytes = GREATEST(u.image_bytes - $2, 0)
             FROM locked l WHERE u.api_key_id = l.api_key_id AND u.period = l.period AND u.start = l.start",
            &[&given_back, &bytes_back, &api_key_id, &day_start, &month_start],
        )
        .await?;
    }
    wipe_session_if_final(tx, id).await?;
    Ok(true)
}

/// A per-request session is kept only while its messages are undelivered.
async fn wipe_session_if_final(tx: &Tx<'_>, id: i64) -> Result<()> {
    let s = tx
        .prepare_cached(
            "UPDATE requests SET session_sealed = NULL
             WHERE id = (SELECT request_id FROM outbox WHERE id = $1)
               AND session_sealed IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM outbox WHERE request_id = requests.id AND state IN ('accepted', 'sending'))",
        )
        .await?;
    tx.execute(&s, &[&id]).await?;
    Ok(())
}

/// Marks a claimed message `sent` and, when no other message of its request
/// is pending, wipes the request's session, in one statement (the outer
/// query sees the table as before the update, hence `o.id <> $4`). Whether
/// the claim was still the row's.
pub(super) async fn mark_sent(
    c: &impl deadpool_postgres::GenericClient,
    (claim, server_message_id, transport, now): (Claim, &str, &str, i64),
) -> Result<bool> {
    let s = c
        .prepare_cached(
            "WITH sent AS (
                    UPDATE outbox SET state = 'sent', server_message_id = $1, transport = $2, error = NULL,
                                      locked_until = NULL, text = NULL, image = NULL, updated_at = $3
                    WHERE id = $4 AND claim_token = $5 AND state = 'sending' RETURNING request_id
                 ), wiped AS (
                    UPDATE requests SET session_sealed = NULL
                    WHERE id = (SELECT request_id FROM sent)
                      AND session_sealed IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = requests.id
                                      AND o.id <> $4 AND o.state IN ('accepted', 'sending'))
                 )
                 SELECT count(*), (SELECT count(pg_notify('tiktok_dm_outcomes', request_id)) FROM sent) FROM sent",
        )
        .await?;
    let row = c
        .query_one(
            &s,
            &[
                &server_message_id,
                &transport,
                &now,
                &claim.id,
                &claim.token,
            ],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)? == 1)
}
