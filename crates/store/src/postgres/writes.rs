//! The PostgreSQL backend's transactions that write: an acceptance, an outcome
//! that ends a message, the session wipe.

use crate::counters::{
    DAY_MS, add_counter, month_start, not_attempted_error, period_of, quota_returned,
};
use crate::error::Result;
use crate::types::*;

use super::count;

/// A transaction on a pooled connection.
pub(super) type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// What an acceptance transaction came to, and so whether to commit it.
pub(super) enum Accepting {
    /// Written: commit.
    Accepted(Enqueued),
    /// Refused (revoked key, idempotent repeat, quota): roll back whatever was
    /// written.
    Refused(Enqueued),
    /// Another acceptance with the same idempotency key committed first (the
    /// unique index said so): roll back, then answer as for a repeat.
    Twin,
}

pub(super) async fn enqueue(
    tx: &Tx<'_>,
    mut request: NewRequest,
    windows: &[QuotaWindow],
    now: i64,
) -> Result<Accepting> {
    // A share lock on the key's row: a revocation (an UPDATE of the row) waits
    // for this acceptance to end, or this one sees it; acceptances of one key
    // do not wait for each other here.
    let s = tx
        .prepare_cached("SELECT revoked_at IS NULL FROM api_keys WHERE id = $1 FOR SHARE")
        .await?;
    let live: Option<bool> = tx
        .query_opt(&s, &[&request.api_key_id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if live != Some(true) {
        return Ok(Accepting::Refused(Enqueued::KeyRevoked));
    }
    if let Some(key) = &request.idempotency_key {
        if let Some(repeat) =
            idempotent_repeat(tx, request.api_key_id, key, &request.request_hash).await?
        {
            return Ok(Accepting::Refused(repeat));
        }
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
                let used = window_used(tx, request.api_key_id, w).await?;
                if used + wanted > w.limit {
                    return Ok(Accepting::Refused(exceeded(w, used)));
                }
            }
        }
        if wanted > w.limit {
            let used = window_used(tx, request.api_key_id, w).await?;
            return Ok(Accepting::Refused(exceeded(w, used)));
        }
    }
    let insert_request = tx
        .prepare_cached(
            "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    let insert_messages = tx
        .prepare_cached(&outbox_insert(request.messages.len()))
        .await?;
    // Last, so this key's counter rows stay locked only from here to the
    // commit: the reservation and the quota check are one statement, and a
    // counter that would pass its limit is left alone (no row comes back).
    // Rows in period order (all, day, month), as `finish` locks them.
    let bump = tx
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
    let rows: Vec<MessageRow> = request
        .messages
        .iter()
        .enumerate()
        .map(|(position, m)| {
            let lease = request.claim_first_ms.filter(|_| position == 0);
            (
                position as i64,
                m.kind.as_str(),
                m.image.as_ref().map_or(0, |i| i.len() as i64),
                if lease.is_some() {
                    "sending"
                } else {
                    "accepted"
                },
                lease.map(|ms| now + ms),
                i64::from(lease.is_some()),
            )
        })
        .collect();
    let image_bytes: i64 = rows.iter().map(|r| r.2).sum();
    let mut message_params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&request.id, &now, &request.api_key_id];
    for (row, m) in rows.iter().zip(&request.messages) {
        message_params.extend([
            &row.0 as &(dyn tokio_postgres::types::ToSql + Sync),
            &row.1,
            &m.client_message_id,
            &m.text,
            &m.image,
            &row.2,
            &row.3,
            &row.4,
            &row.5,
        ]);
    }
    let count = i64::try_from(wanted).unwrap_or(i64::MAX);
    // The three go out together (pipelined on the connection) and run in
    // order; if the request's insert fails, the others fail with it.
    let request_params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &request.id,
        &request.api_key_id,
        &request.idempotency_key,
        &request.request_hash,
        &request.account,
        &request.session_sealed,
        &request.conversation_id,
        &request.conversation_short_id,
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
    let (inserted, ids, counters) = tokio::join!(
        tx.execute(&insert_request, &request_params),
        tx.query(&insert_messages, &message_params),
        tx.query(&bump, &bump_params),
    );
    match inserted {
        Ok(_) => {}
        Err(e)
            if request.idempotency_key.is_some()
                && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            return Ok(Accepting::Twin);
        }
        Err(e) => return Err(e.into()),
    }
    let mut first_id = None;
    for row in ids? {
        if request.claim_first_ms.is_some() && row.try_get::<_, i64>(1)? == 0 {
            first_id = Some(row.try_get::<_, i64>(0)?);
        }
    }
    let mut totals = UsageTotals::default();
    let mut counted = [false; 3];
    for row in counters? {
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
        let used = window_used(tx, request.api_key_id, w).await?;
        return Ok(Accepting::Refused(exceeded(w, used)));
    }
    let mut used = Vec::with_capacity(windows.len());
    for w in windows {
        used.push(match period_of(w) {
            "month" if w.start == month_start => totals.month,
            "day" if w.start == day_start => totals.today,
            _ => window_used(tx, request.api_key_id, w).await?,
        });
    }
    let claimed = first_id
        .and_then(|id| OutboxMessage::claimed_first(id, &mut request))
        .map(Box::new);
    Ok(Accepting::Accepted(Enqueued::accepted(
        request,
        now,
        image_bytes,
        claimed,
        totals,
        used,
    )))
}

/// What the outbox insert takes per message besides the message itself:
/// position, kind, image bytes, state, lease end, attempts.
type MessageRow = (i64, &'static str, i64, &'static str, Option<i64>, i64);

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

pub(super) async fn window_used(tx: &Tx<'_>, api_key_id: i64, window: &QuotaWindow) -> Result<u64> {
    let s = tx
        .prepare_cached(
            "SELECT messages FROM usage_counters WHERE api_key_id = $1 AND period = $2 AND start = $3",
        )
        .await?;
    let used: Option<i64> = tx
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
