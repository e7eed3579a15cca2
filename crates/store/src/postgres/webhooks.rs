//! Webhooks and their delivery queue on PostgreSQL: the same tables and
//! behaviour as the SQLite backend's. Deliveries are queued in the
//! transaction that appends their event ([`FAN_OUT`], see `events.rs`);
//! claims take due rows with `FOR UPDATE SKIP LOCKED`, so several gateways
//! never claim one delivery twice, and raise their fencing token. Claims, and
//! creates of one key's webhooks, each wait for one another on an advisory
//! lock, so a count they read (in flight, webhooks of the key) is not out of
//! date by the time they write.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::events::stored_event;
use super::writes::Conn;
use crate::columns::{WEBHOOK_COLUMNS, WebhookRow, outcome_columns};
use crate::counters::count;
use crate::error::{Error, Result};
use crate::webhooks::*;

/// A webhook's event types, in order, as one column (U+001F between them).
const WEBHOOK_EVENTS: &str = "(SELECT string_agg(event_type, chr(31) ORDER BY position)
    FROM webhook_events WHERE webhook_id = w.id)";

/// Queues a delivery, due at `$2`, of each event whose cursor is in `$1`
/// for every webhook that receives it: those listing its type whose key is
/// not revoked and may see its account (`any_account`, or the account listed
/// for the key, as for a send). In cursor order, so that delivery ids (the
/// claims' order among rows due at once) follow the events'.
pub(super) const FAN_OUT: &str = "INSERT INTO webhook_deliveries
        (webhook_id, event_cursor, state, next_attempt_at, created_at, updated_at)
    SELECT w.id, e.cursor, 'pending', $2, $2, $2 FROM events e
    JOIN webhook_events we ON we.event_type = e.event_type
    JOIN webhooks w ON w.id = we.webhook_id
    JOIN api_keys k ON k.id = w.api_key_id
    WHERE e.cursor = ANY($1) AND k.revoked_at IS NULL
      AND (k.any_account OR EXISTS (SELECT 1 FROM api_key_accounts a
                                    WHERE a.api_key_id = k.id AND a.account = e.account))
    ORDER BY e.cursor, w.id";

/// The class of the advisory lock a webhook's creation holds on its API key
/// ("tdmw"; the key id, modulo 2^31, is the lock's second half). Two-part
/// keys never meet the one-part keys of the claims and of the event log.
const CREATE_LOCK: i32 = 0x7464_6d77;

/// The advisory lock a claim holds until it commits ("tdm_whcl").
const CLAIM_LOCK: i64 = 0x7464_6d5f_7768_636c;

/// Stores a webhook under a new random id, with its event types, in one
/// transaction, unless its key has `max` webhooks: creates for one key take
/// turns on an advisory lock, and each counts only once it holds it, so
/// creates at once never take a key past `max`.
pub(super) async fn create(c: &mut Conn, new: &NewWebhook, max: u32, now: i64) -> Result<Webhook> {
    let tx = c.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, ($2::int8 % 2147483648)::int4)")
        .await?;
    let count = tx
        .prepare_cached("SELECT count(*) FROM webhooks WHERE api_key_id = $1")
        .await?;
    let lock_params: [&(dyn ToSql + Sync); 2] = [&CREATE_LOCK, &new.key_id];
    let count_params: [&(dyn ToSql + Sync); 1] = [&new.key_id];
    // Pipelined: the server counts once the lock is held.
    let (locked, counted) = tokio::join!(
        tx.execute(&lock, &lock_params),
        tx.query_one(&count, &count_params)
    );
    locked?;
    let has: i64 = counted?.try_get(0)?;
    if has >= i64::from(max) {
        return Err(Error::LimitReached(format!(
            "API key {} has {max} webhooks, the most it may have",
            new.key_id
        )));
    }
    // 16 hex digits of a random UUID's SHA-256 (PostgreSQL 13 has both built
    // in; a UUID's own digits include fixed version bits).
    let inserted = tx
        .query_one(
            "INSERT INTO webhooks (id, api_key_id, url, secret_sealed, created_at)
             VALUES ('wh_' || left(encode(sha256(uuid_send(gen_random_uuid())), 'hex'), 16), $1, $2, $3, $4)
             RETURNING id",
            &[&new.key_id, &new.url, &new.secret_sealed, &now],
        )
        .await;
    let id: String = match inserted {
        Ok(row) => row.try_get(0)?,
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(Error::NotFound(format!("API key {}", new.key_id)));
        }
        Err(e) => return Err(e.into()),
    };
    let events = new.distinct_events();
    tx.execute(
        "INSERT INTO webhook_events (webhook_id, event_type, position)
         SELECT $1, t.event_type, t.n - 1 FROM unnest($2::text[]) WITH ORDINALITY AS t(event_type, n)",
        &[&id, &events],
    )
    .await?;
    tx.commit().await?;
    Ok(Webhook {
        id,
        key_id: new.key_id,
        url: new.url.clone(),
        events,
        secret_sealed: new.secret_sealed.clone(),
        created_at: now,
    })
}

/// Deletes a key's webhook with its deliveries; whether it had one.
pub(super) async fn delete(c: &Conn, key_id: i64, id: &str) -> Result<bool> {
    let n = c
        .execute(
            "DELETE FROM webhooks WHERE id = $1 AND api_key_id = $2",
            &[&id, &key_id],
        )
        .await?;
    Ok(n == 1)
}

/// Claims due deliveries (as the SQLite backend: pending and due, or
/// delivering with an expired lease, of a key not revoked, at most `$4` of a
/// webhook in flight), skipping rows another writer holds; oldest first.
/// Webhook by webhook through its index ranges (see the SQLite backend's
/// `due_ids`); the room left to each counts the leases not yet expired.
const CLAIM: &str = "WITH room AS (
        SELECT w.id AS webhook_id,
               $4::int8 - (SELECT count(*) FROM webhook_deliveries b
                           WHERE b.webhook_id = w.id AND b.state = 'delivering'
                             AND b.locked_until >= $1) AS n
        FROM webhooks w JOIN api_keys k ON k.id = w.api_key_id
        WHERE k.revoked_at IS NULL
    ), due AS (
        SELECT c.id FROM room r CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.webhook_id = r.webhook_id AND d.state IN ('pending', 'delivering')
              AND d.next_attempt_at <= $1 AND (d.state = 'pending' OR d.locked_until < $1)
            ORDER BY d.next_attempt_at, d.id
            LIMIT GREATEST(LEAST(r.n, $2::int8), 0)
            FOR UPDATE OF d SKIP LOCKED
        ) c
        ORDER BY c.next_attempt_at, c.id
        LIMIT $2::int8
    )
    UPDATE webhook_deliveries d SET state = 'delivering', locked_until = $3,
           attempts = d.attempts + 1, claim_token = d.claim_token + 1, updated_at = $1
    FROM due, webhooks w, events e
    WHERE d.id = due.id AND w.id = d.webhook_id AND e.cursor = d.event_cursor";

/// Claims up to `limit` due deliveries, at most `per_webhook` of a webhook
/// in flight ([`CLAIM`]), under the claims' advisory lock: another claim's
/// leases are committed before this one counts them.
pub(super) async fn claim(
    c: &mut Conn,
    limit: u32,
    per_webhook: u32,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<ClaimedDelivery>> {
    let tx = c.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    let s = tx
        .prepare_cached(&format!(
            "{CLAIM} RETURNING d.id, d.claim_token, d.attempts, {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS},
                e.cursor, e.account, e.event_type, e.conversation_id, e.payload, e.occurred_at,
                e.created_at, d.next_attempt_at, d.created_at"
        ))
        .await?;
    let (limit, per_webhook, until) = (
        i64::from(limit),
        i64::from(per_webhook),
        now.saturating_add(lease_ms),
    );
    let lock_params: [&(dyn ToSql + Sync); 1] = [&CLAIM_LOCK];
    let claim_params: [&(dyn ToSql + Sync); 4] = [&now, &limit, &until, &per_webhook];
    // Pipelined: the server claims once the lock is held.
    let (locked, rows) = tokio::join!(tx.execute(&lock, &lock_params), tx.query(&s, &claim_params));
    locked?;
    let rows = rows?;
    tx.commit().await?;
    let mut claimed = rows
        .iter()
        .map(|r| {
            let delivery = ClaimedDelivery {
                id: r.try_get(0)?,
                token: r.try_get(1)?,
                attempts: r.try_get(2)?,
                webhook: webhook_row(r, 3)?.webhook(),
                event: stored_event(r, 9)?,
                queued_at: r.try_get(17)?,
            };
            Ok((r.try_get::<_, i64>(16)?, delivery))
        })
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|(at, d)| (*at, d.id));
    Ok(claimed.into_iter().map(|(_, d)| d).collect())
}

/// Records a claimed delivery's outcome, if the claim still holds it.
pub(super) async fn finish(
    c: &Conn,
    claim: WebhookClaim,
    outcome: &WebhookOutcome,
    now: i64,
) -> Result<bool> {
    let (state, at, error) = outcome_columns(outcome);
    let s = c
        .prepare_cached(
            "UPDATE webhook_deliveries SET state = $1,
                next_attempt_at = COALESCE($2, next_attempt_at),
                error = CASE WHEN $1 = 'pending' THEN error ELSE $3 END,
                locked_until = NULL, updated_at = $4
             WHERE id = $5 AND claim_token = $6 AND state = 'delivering'",
        )
        .await?;
    let n = c
        .execute(&s, &[&state, &at, &error, &now, &claim.id, &claim.token])
        .await?;
    Ok(n == 1)
}

/// Queues again every event after `since` the webhook receives (see
/// [`crate::Store::replay_webhook`]); how many were queued or made due.
pub(super) async fn replay(c: &Conn, key_id: i64, id: &str, since: i64, now: i64) -> Result<u64> {
    let s = c
        .prepare_cached(
            "INSERT INTO webhook_deliveries (webhook_id, event_cursor, state, next_attempt_at, created_at, updated_at)
             SELECT w.id, e.cursor, 'pending', $4, $4, $4
             FROM webhooks w
             JOIN api_keys k ON k.id = w.api_key_id
             JOIN webhook_events we ON we.webhook_id = w.id
             JOIN events e ON e.event_type = we.event_type AND e.cursor > $3
             WHERE w.id = $1 AND w.api_key_id = $2 AND k.revoked_at IS NULL
               AND (k.any_account OR EXISTS (SELECT 1 FROM api_key_accounts a
                                             WHERE a.api_key_id = k.id AND a.account = e.account))
             ORDER BY e.cursor
             ON CONFLICT (webhook_id, event_cursor) WHERE state IN ('pending', 'delivering') DO UPDATE SET
                next_attempt_at = LEAST(webhook_deliveries.next_attempt_at, excluded.next_attempt_at),
                attempts = 0, created_at = excluded.created_at, updated_at = excluded.updated_at
             WHERE webhook_deliveries.state = 'pending'",
        )
        .await?;
    Ok(c.execute(&s, &[&id, &key_id, &since, &now]).await?)
}

/// The webhook whose [`WEBHOOK_COLUMNS`] and event types start at column
/// `at` of `row`.
fn webhook_row(row: &tokio_postgres::Row, at: usize) -> Result<WebhookRow> {
    Ok(WebhookRow {
        id: row.try_get(at)?,
        key_id: row.try_get(at + 1)?,
        url: row.try_get(at + 2)?,
        secret_sealed: row.try_get(at + 3)?,
        created_at: row.try_get(at + 4)?,
        events: row.try_get(at + 5)?,
    })
}

/// A key's webhooks, oldest first.
pub(super) async fn for_key(c: &Conn, key_id: i64) -> Result<Vec<Webhook>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS} FROM webhooks w
             WHERE w.api_key_id = $1 ORDER BY w.created_at, w.id COLLATE \"C\""
        ))
        .await?;
    c.query(&s, &[&key_id])
        .await?
        .iter()
        .map(|r| Ok(webhook_row(r, 0)?.webhook()))
        .collect()
}

/// The webhook `id`, whichever key's.
pub(super) async fn by_id(c: &Conn, id: &str) -> Result<Option<Webhook>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS} FROM webhooks w WHERE w.id = $1"
        ))
        .await?;
    c.query_opt(&s, &[&id])
        .await?
        .map(|r| Ok(webhook_row(&r, 0)?.webhook()))
        .transpose()
}

/// Open deliveries, found through the partial index.
pub(super) async fn stats(c: &Conn) -> Result<WebhookDeliveryStats> {
    let s = c
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'delivering')
             FROM webhook_deliveries WHERE state IN ('pending', 'delivering')",
        )
        .await?;
    let row = c.query_one(&s, &[]).await?;
    Ok(WebhookDeliveryStats {
        pending: count(row.try_get(0)?),
        in_flight: count(row.try_get(1)?),
    })
}
