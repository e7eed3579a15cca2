//! Webhooks and their delivery queue on SQLite. Changes go through the
//! writer: a delivery row is queued in the group that appends its event
//! ([`fan_out`]); claims lease due rows and raise their fencing token, as the
//! outbox's claims do. Reads run on the read connections.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::columns::{WEBHOOK_COLUMNS, WebhookRow, outcome_columns};
use crate::counters::count;
use crate::error::{Error, Result};
use crate::webhooks::*;

use super::events::{EVENT_COLUMNS, stored_event};
use super::writer::{Done, Op};

/// A webhook's event types, in order, as one column (U+001F between them).
const WEBHOOK_EVENTS: &str = "(SELECT group_concat(event_type, char(31)) FROM
    (SELECT event_type FROM webhook_events WHERE webhook_id = w.id ORDER BY position))";

/// Which webhooks receive an event (`e`): those listing its type whose key
/// is not revoked and may see its account (`any_account`, or the account
/// listed for the key, as for a send).
const RECEIVERS: &str = "JOIN webhook_events we ON we.event_type = e.event_type
    JOIN webhooks w ON w.id = we.webhook_id
    JOIN api_keys k ON k.id = w.api_key_id
    WHERE k.revoked_at IS NULL
      AND (k.any_account OR EXISTS (SELECT 1 FROM api_key_accounts a
                                    WHERE a.api_key_id = k.id AND a.account = e.account))";

/// A change to webhooks or their deliveries, run by the writer.
pub(crate) enum WebhookOp {
    /// A webhook, the most its key may have, and the time.
    Create(NewWebhook, u32, i64),
    Delete {
        key_id: i64,
        id: String,
    },
    Claim {
        limit: u32,
        per_webhook: u32,
        lease_ms: i64,
        now: i64,
    },
    Finish {
        claim: WebhookClaim,
        outcome: WebhookOutcome,
        now: i64,
    },
    Replay {
        key_id: i64,
        id: String,
        since: i64,
        now: i64,
    },
}

impl From<WebhookOp> for Op {
    fn from(op: WebhookOp) -> Self {
        Self::Webhooks(op)
    }
}

impl WebhookOp {
    /// Whether the caller is told "stored" on the strength of it; claims and
    /// outcomes are redone safely (a delivery is at least once).
    pub(super) fn must_be_durable(&self) -> bool {
        matches!(
            self,
            Self::Create(..) | Self::Delete { .. } | Self::Replay { .. }
        )
    }

    /// Whether it writes with more than one statement.
    pub(super) fn has_several_statements(&self) -> bool {
        matches!(self, Self::Create(..) | Self::Claim { .. })
    }

    pub(super) fn apply(self, c: &Connection) -> Result<Done> {
        match self {
            Self::Create(new, max, now) => create(c, &new, max, now).map(Done::Webhook),
            Self::Delete { key_id, id } => {
                let n = c
                    .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND api_key_id = ?2")?
                    .execute(params![id, key_id])?;
                Ok(Done::Flag(n == 1))
            }
            Self::Claim {
                limit,
                per_webhook,
                lease_ms,
                now,
            } => claim(c, limit, per_webhook, lease_ms, now).map(Done::Deliveries),
            Self::Finish {
                claim,
                outcome,
                now,
            } => {
                let (state, at, error) = outcome_columns(&outcome);
                let n = c
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET state = ?1,
                            next_attempt_at = COALESCE(?2, next_attempt_at),
                            error = CASE WHEN ?1 = 'pending' THEN error ELSE ?3 END,
                            locked_until = NULL, updated_at = ?4
                         WHERE id = ?5 AND claim_token = ?6 AND state = 'delivering'",
                    )?
                    .execute(params![state, at, error, now, claim.id, claim.token])?;
                Ok(Done::Flag(n == 1))
            }
            Self::Replay {
                key_id,
                id,
                since,
                now,
            } => replay(c, key_id, &id, since, now).map(Done::Count),
        }
    }
}

/// What a [`WebhookOp::Create`] did.
pub(crate) enum Created {
    Webhook(Webhook),
    /// There is no such key.
    NoKey(i64),
    /// The key has this many webhooks, the most it may have.
    Full(i64, u32),
}

impl Created {
    /// The webhook, or why there is none.
    pub(super) fn into_result(self) -> Result<Webhook> {
        match self {
            Self::Webhook(w) => Ok(w),
            Self::NoKey(key_id) => Err(Error::NotFound(format!("API key {key_id}"))),
            Self::Full(key_id, max) => Err(Error::LimitReached(format!(
                "API key {key_id} has {max} webhooks, the most it may have"
            ))),
        }
    }
}

/// Stores a webhook under a new random id, with its event types, unless its
/// key does not exist or has `max` webhooks (both read first: an error would
/// take the writer's whole group back). The writer is alone, so nothing comes
/// between the count and the insert.
fn create(c: &Connection, new: &NewWebhook, max: u32, now: i64) -> Result<Created> {
    let has: Option<i64> = c
        .prepare_cached(
            "SELECT (SELECT count(*) FROM webhooks WHERE api_key_id = k.id) FROM api_keys k WHERE k.id = ?1",
        )?
        .query_row(params![new.key_id], |r| r.get(0))
        .optional()?;
    match has {
        None => return Ok(Created::NoKey(new.key_id)),
        Some(n) if n >= i64::from(max) => return Ok(Created::Full(new.key_id, max)),
        Some(_) => {}
    }
    let id: String = c
        .prepare_cached(
            "INSERT INTO webhooks (id, api_key_id, url, secret_sealed, created_at)
             VALUES ('wh_' || lower(hex(randomblob(8))), ?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row(params![new.key_id, new.url, new.secret_sealed, now], |r| {
            r.get(0)
        })?;
    let events = new.distinct_events();
    let mut insert = c.prepare_cached(
        "INSERT INTO webhook_events (webhook_id, event_type, position) VALUES (?1, ?2, ?3)",
    )?;
    for (position, event_type) in events.iter().enumerate() {
        insert.execute(params![id, event_type, position as i64])?;
    }
    Ok(Created::Webhook(Webhook {
        id,
        key_id: new.key_id,
        url: new.url.clone(),
        events,
        secret_sealed: new.secret_sealed.clone(),
        created_at: now,
    }))
}

/// Queues a delivery of the event at `cursor` for every webhook that
/// receives it (see [`RECEIVERS`]), due at once.
pub(super) fn fan_out(c: &Connection, cursor: i64, now: i64) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO webhook_deliveries (webhook_id, event_cursor, state, next_attempt_at, created_at, updated_at)
         SELECT w.id, e.cursor, 'pending', ?2, ?2, ?2 FROM events e {RECEIVERS} AND e.cursor = ?1"
    ))?
    .execute(params![cursor, now])?;
    Ok(())
}

/// Drops the open deliveries of the webhooks of the key named `name` (it
/// was just revoked: nothing more goes out for it).
pub(super) fn drop_open_deliveries_of_key(c: &Connection, name: &str) -> Result<()> {
    c.prepare_cached(
        "DELETE FROM webhook_deliveries WHERE state IN ('pending', 'delivering')
           AND webhook_id IN (SELECT w.id FROM webhooks w JOIN api_keys k ON k.id = w.api_key_id
                              WHERE k.name = ?1)",
    )?
    .execute(params![name])?;
    Ok(())
}

/// Claims up to `limit` due deliveries, oldest first, at most `per_webhook`
/// of each webhook in flight (see [`due_ids`]), and leases them.
fn claim(
    c: &Connection,
    limit: u32,
    per_webhook: u32,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<ClaimedDelivery>> {
    let ids = due_ids(c, limit, per_webhook, now)?;
    let mut select = c.prepare_cached(&format!(
        "SELECT d.id, d.claim_token, d.attempts, {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS}, {EVENT_COLUMNS},
                d.created_at
         FROM webhook_deliveries d
         JOIN webhooks w ON w.id = d.webhook_id
         JOIN events e ON e.cursor = d.event_cursor
         WHERE d.id = ?1"
    ))?;
    let mut lease = c.prepare_cached(
        "UPDATE webhook_deliveries SET state = 'delivering', locked_until = ?1, attempts = attempts + 1,
                claim_token = claim_token + 1, updated_at = ?2
         WHERE id = ?3",
    )?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let delivery = select.query_row(params![id], |r| {
            Ok(ClaimedDelivery {
                id: r.get(0)?,
                // The token this claim raises it to (the writer is alone).
                token: r.get::<_, i64>(1)? + 1,
                attempts: r.get::<_, i64>(2)? + 1,
                webhook: webhook_row(r, 3)?.webhook(),
                event: stored_event(r, 9)?,
                queued_at: r.get(16)?,
            })
        })?;
        lease.execute(params![now + lease_ms, now, id])?;
        claimed.push(delivery);
    }
    Ok(claimed)
}

/// The ids of up to `limit` due deliveries, oldest first (by due time, then
/// id), taking of each webhook only as many as keep it within `per_webhook`
/// in flight. Due: pending and its time has come, or delivering with an
/// expired lease (the worker that held it died). In flight: delivering under
/// a lease not yet expired. A revoked key's deliveries stay behind.
///
/// Webhook by webhook, each through its own index range
/// (`webhook_deliveries_leased`, `webhook_deliveries_queue`; the `state`
/// terms match their partial indexes), so a long backlog of one is never
/// read whole. `next_attempt_at <= now` holds for an expired lease too (a
/// row is claimed only once due, and its lease ends after that), so it bounds
/// the range of both kinds.
fn due_ids(c: &Connection, limit: u32, per_webhook: u32, now: i64) -> Result<Vec<i64>> {
    let mut rooms = c.prepare_cached(
        "SELECT w.id, ?2 - (SELECT count(*) FROM webhook_deliveries b
                            WHERE b.webhook_id = w.id AND b.state = 'delivering' AND b.locked_until >= ?1)
         FROM webhooks w JOIN api_keys k ON k.id = w.api_key_id
         WHERE k.revoked_at IS NULL",
    )?;
    let rooms = rooms
        .query_map(params![now, i64::from(per_webhook)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut due = c.prepare_cached(
        "SELECT next_attempt_at, id FROM webhook_deliveries
         WHERE webhook_id = ?1 AND state IN ('pending', 'delivering') AND next_attempt_at <= ?2
           AND (state = 'pending' OR locked_until < ?2)
         ORDER BY next_attempt_at, id
         LIMIT ?3",
    )?;
    let mut found: Vec<(i64, i64)> = Vec::new();
    for (webhook, room) in rooms.iter().filter(|(_, room)| *room > 0) {
        let take = (*room).min(i64::from(limit));
        let rows = due.query_map(params![webhook, now, take], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            found.push(row?);
        }
    }
    found.sort_unstable();
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Queues again, due at `now`, every event after `since` the webhook `id`
/// of key `key_id` receives; an event with an open delivery keeps that one
/// (made due at `now`, counted afresh and queued again at `now` if it waits
/// for a retry). How many were queued or made due.
fn replay(c: &Connection, key_id: i64, id: &str, since: i64, now: i64) -> Result<u64> {
    let n = c
        .prepare_cached(
            "INSERT INTO webhook_deliveries (webhook_id, event_cursor, state, next_attempt_at, created_at, updated_at)
             SELECT w.id, e.cursor, 'pending', ?4, ?4, ?4
             FROM webhooks w
             JOIN api_keys k ON k.id = w.api_key_id
             JOIN webhook_events we ON we.webhook_id = w.id
             JOIN events e ON e.event_type = we.event_type AND e.cursor > ?3
             WHERE w.id = ?1 AND w.api_key_id = ?2 AND k.revoked_at IS NULL
               AND (k.any_account OR EXISTS (SELECT 1 FROM api_key_accounts a
                                             WHERE a.api_key_id = k.id AND a.account = e.account))
             ORDER BY e.cursor
             ON CONFLICT (webhook_id, event_cursor) WHERE state IN ('pending', 'delivering') DO UPDATE SET
                next_attempt_at = MIN(next_attempt_at, excluded.next_attempt_at),
                attempts = 0, created_at = excluded.created_at, updated_at = excluded.updated_at
             WHERE state = 'pending'",
        )?
        .execute(params![id, key_id, since, now])?;
    Ok(n as u64)
}

/// The webhook whose [`WEBHOOK_COLUMNS`] and event types start at column
/// `at` of `row`.
fn webhook_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: row.get(at)?,
        key_id: row.get(at + 1)?,
        url: row.get(at + 2)?,
        secret_sealed: row.get(at + 3)?,
        created_at: row.get(at + 4)?,
        events: row.get(at + 5)?,
    })
}

/// A key's webhooks, oldest first.
pub(super) fn for_key(c: &Connection, key_id: i64) -> Result<Vec<Webhook>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS} FROM webhooks w
         WHERE w.api_key_id = ?1 ORDER BY w.created_at, w.id"
    ))?;
    let rows = s.query_map(params![key_id], |r| webhook_row(r, 0))?;
    rows.map(|r| Ok(r?.webhook())).collect()
}

/// The webhook `id`, whichever key's.
pub(super) fn by_id(c: &Connection, id: &str) -> Result<Option<Webhook>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS}, {WEBHOOK_EVENTS} FROM webhooks w WHERE w.id = ?1"
    ))?;
    Ok(s.query_row(params![id], |r| webhook_row(r, 0))
        .optional()?
        .map(WebhookRow::webhook))
}

/// Open deliveries, found through the partial index.
pub(super) fn stats(c: &Connection) -> Result<WebhookDeliveryStats> {
    let (pending, in_flight): (i64, i64) = c
        .prepare_cached(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'delivering'), 0)
             FROM webhook_deliveries WHERE state IN ('pending', 'delivering')",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(WebhookDeliveryStats {
        pending: count(pending),
        in_flight: count(in_flight),
    })
}
