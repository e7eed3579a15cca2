//! Webhooks and their delivery queue on PostgreSQL: the same tables and
//! behaviour as the SQLite backend's. Deliveries are queued in the
//! transaction that appends their event ([`FAN_OUT`], see `events.rs`);
//! claims take due rows with `FOR UPDATE SKIP LOCKED`, so several gateways
//! never claim one delivery twice, and raise their fencing token.

use tokio_postgres::error::SqlState;

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

/// Stores a webhook under a new random id, with its event types, in one
/// transaction.
pub(super) async fn create(c: &mut Conn, new: &NewWebhook, now: i64) -> Result<Webhook> {
    let tx = c.transaction().await?;
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
/// delivering with an expired lease, of a key not revoked), skipping rows
/// another claimer holds; oldest first.
pub(super) async fn claim(
    c: &Conn,
    limit: u32,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<ClaimedDelivery>> {
    let s = c
        .prepare_cached(&format!(
            "WITH due AS (
                SELECT d.id FROM webhook_deliveries d
                JOIN webhooks w ON w.id = d.webhook_id
                JOIN api_keys k ON k.id = w.api_key_id
                WHERE d.state IN ('pending', 'delivering')
                  AND ((d.state = 'pending' AND d.next_attempt_at <= $1)
                       OR (d.state = 'delivering' AND d.locked_until < $1))
                  AND k.revoked_at IS NULL
                ORDER BY d.next_attempt_at, d.id
                LIMIT $2
                FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE webhook_deliveries d SET state = 'delivering', locked_until = $3,
                    attempts = d.attempts + 1, claim_token = d.claim_token + 1, updated_at = $1
             FROM due, webhooks w, events e
             WHERE d.id = due.id AND w.id = d.webhook_id AND e.cursor = d.event_cursor
             RETURNING d.id, d.claim_token, d.attempts, {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS},
                       e.cursor, e.account, e.event_type, e.conversation_id, e.payload, e.occurred_at,
                       e.created_at, d.next_attempt_at"
        ))
        .await?;
    let rows = c
        .query(&s, &[&now, &i64::from(limit), &(now + lease_ms)])
        .await?;
    let mut claimed = rows
        .iter()
        .map(|r| {
            let delivery = ClaimedDelivery {
                id: r.try_get(0)?,
                token: r.try_get(1)?,
                attempts: r.try_get(2)?,
                webhook: webhook_row(r, 3)?.webhook(),
                event: stored_event(r, 9)?,
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
                attempts = 0, updated_at = excluded.updated_at
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
