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
    // A share lock on the key's row: a revocation (an UPDATE of the row) waits
    // for this acceptance to end, or this one sees it; acceptances of one key
    // do not wait for each other here.
    let s = c
        .prepare_cached("SELECT revoked_at IS NULL FROM api_keys WHERE id = $1 FOR SHARE")
        .await?;
    let repeat = async {
        match &request.idempotency_key {
            Some(key) => idempotent_repeat(c, request.api_key_id, key, &request.request_hash).await,
            None => Ok(None),
        }
    };
    let key_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&request.api_key_id];
    let (begun, live, repeat) = tokio::join!(
        c.batch_execute("BEGIN"),
        c.query_opt(&s, &key_params),
        repeat,
    );
    begun?;
    let live: Option<bool> = live?.map(|r| r.try_get(0)).transpose()?;
    if live != Some(true) {
        roll_back(c).await?;
        return Ok(Some(Enqueued::KeyRevoked));
    }
    if let Some(repeat) = repeat? {
        roll_back(c).await?;
        return Ok(Some(repeat));
    }
    let day_start = now - now.rem_euclid(DAY_MS);
    let month_start = month_start(now);
    let wanted = request.messages.len() as u64;
    // The limits the counter upsert enforces; a window that is not the current
    // day or month (never, as the gateway builds them) is checked by a read.
    let (mut daily, mut monthly) = (i64::MAX, i64::MAX);
    for w in windows {
        let limit = i64::try_from(w.limit).unwrap_or(i64::MAX);
        match period_of(w) {
            "day" if w.start == day_start => daily = limit,
            "month" if w.start == month_start => monthly = limit,
            _ => {
                let used = window_used(c, request.api_key_id, w).await?;
                if used + wanted > w.limit {
                    roll_back(c).await?;
                    return Ok(Some(exceeded(w, used)));
                }
            }
        }
        if wanted > w.limit {
            let used = window_used(c, request.api_key_id, w).await?;
            roll_back(c).await?;
            return Ok(Some(exceeded(w, used)));
        }
    }
    let unlimited = daily == i64::MAX && monthly == i64::MAX;
    let insert_request = c
        .prepare_cached(
            "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    let rows = outbox_rows(&request, now);
    let client_message_ids: Vec<&str> = request
        .messages
        .iter()
        .map(|m| m.client_message_id.as_str())
        .collect();
    let image_bytes: i64 = rows.iter().map(|r| r.image_bytes).sum();
    let mut message_params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&request.id, &now, &request.api_key_id];
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
    let count = i64::try_from(wanted).unwrap_or(i64::MAX);
    let (conversation_id, conversation_short_id) = target_columns(&request.target);
    // They go out together (pipelined on the connection) and run in order; if
    // one fails, the transaction is aborted, the ones after it fail too, and a
    // COMMIT sent with them rolls back.
    let request_params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
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
    let (inserted, ids, counters, committed) = tokio::join!(
        c.execute(&insert_request, &request_params),
        c.query(&insert_messages, &message_params),
        c.query(&bump, &bump_params),
        commit,
    );
    let committed = committed?;
    let ended = |failed: bool| async move {
        if failed && !committed {
            roll_back(c).await
        } else {
            Ok(())
        }
    };
    match inserted {
        Ok(_) => {}
        Err(e)
            if request.idempotency_key.is_some()
                && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            ended(true).await?;
            return Ok(None);
        }
        Err(e) => {
            ended(true).await?;
            return Err(e.into());
        }
    }
    let (ids, counters) = match (ids, counters) {
        (Ok(ids), Ok(counters)) => (ids, counters),
        (Err(e), _) | (_, Err(e)) => {
            ended(true).await?;
            return Err(e.into());
        }
    };
    let mut first_id = None;
    for row in ids {
        if request.claim_first_ms.is_some() && row.try_get::<_, i64>(1)? == 0 {
            first_id = Some(row.try_get::<_, i64>(0)?);
        }
    }
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
        "day" => w.start == day_start && !counted[0],
        _ => w.start == month_start && !counted[1],
    }) {
        // Only a limited key gets here (an unlimited one counts every row).
        let used = window_used(c, request.api_key_id, w).await?;
        roll_back(c).await?;
        return Ok(Some(exceeded(w, used)));
    }
    let mut used = Vec::with_capacity(windows.len());
    for w in windows {
        used.push(match period_of(w) {
            "month" if w.start == month_start => totals.month,
            "day" if w.start == day_start => totals.today,
            _ => window_used(c, request.api_key_id, w).await?,
        });
    }
    if !committed {
        c.batch_execute("COMMIT").await?;
    }
    let claimed = first_id
        .and_then(|id| OutboxMessage::claimed_first(id, &mut request))
        .map(Box::new);
    Ok(Some(Enqueued::accepted(
        request,
        now,
        image_bytes,
        claimed,
        totals,
        used,
    )))
}

/// The outbox insert for `n` messages: `$1` request id, `$2` now, `$3` key
/// id, then nine values per message.
fn outbox_insert(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO outbox (request_id, position, kind, client_message_id, text, image, image_bytes, state, locked_until, attempts, next_attempt_at, api_key_id, created_at, updated_at) VALUES ",
    );
    for i in 0..n {
        let b = 3 + i * 9;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $2, $3, $2, $2)",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
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
    id: i64,
    state: State,
    error: &str,
    now: i64,
) -> Result<()> {
    let s = tx
        .prepare_cached(
            "SELECT o.request_id, o.position, o.api_key_id, o.image_bytes, o.state, r.day_start, r.month_start
             FROM outbox o JOIN requests r ON r.id = o.request_id WHERE o.id = $1 FOR UPDATE OF o",
        )
        .await?;
    let Some(row) = tx.query_opt(&s, &[&id]).await? else {
        return Ok(());
    };
    let (request_id, position, api_key_id, image_bytes): (String, i64, i64, i64) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    );
    let (was, day_start, month_start): (String, i64, i64) =
        (row.try_get(4)?, row.try_get(5)?, row.try_get(6)?);
    if State::parse(&was)?.is_final() {
        return Ok(());
    }
    tx.execute(
        "UPDATE outbox SET state = $1, error = $2, locked_until = NULL, image = NULL, updated_at = $3 WHERE id = $4",
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
                "UPDATE outbox SET state = 'failed', error = $1, image = NULL, updated_at = $2
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
    wipe_session_if_final(tx, id).await
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
