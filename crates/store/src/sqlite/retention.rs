//! Retention on SQLite: the writer deletes, in one of its groups, a batch of
//! requests whose every message ended before the cutoff, and the day and month
//! counters of periods that ended before it; and, in a method of their own,
//! batches of events logged before a cutoff.

use rusqlite::{Connection, params};

use crate::counters::{DAY_MS, month_start};
use crate::error::Result;
use crate::types::Expired;

/// Requests old enough to go, oldest first: every message final and last
/// written before `?1` (a request is always older than its messages' last
/// writes, so `created_at` bounds the search through `requests_created`).
const EXPIRED_REQUESTS: &str = "SELECT r.id FROM requests r
 WHERE r.created_at < ?1
   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = r.id
                   AND (o.state IN ('accepted', 'sending') OR o.updated_at >= ?1))
 ORDER BY r.created_at
 LIMIT ?2";

/// Deletes up to `max` expired requests with their messages, and the
/// expired counters (see [`crate::Store::delete_expired`]).
pub(super) fn delete_expired(c: &Connection, before: i64, max: u32) -> Result<Expired> {
    let ids: Vec<String> = c
        .prepare_cached(EXPIRED_REQUESTS)?
        .query_map(params![before, i64::from(max)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut expired = Expired::default();
    let mut messages = c.prepare_cached("DELETE FROM outbox WHERE request_id = ?1")?;
    let mut requests = c.prepare_cached("DELETE FROM requests WHERE id = ?1")?;
    for id in &ids {
        expired.messages += messages.execute(params![id])? as u64;
        expired.requests += requests.execute(params![id])? as u64;
    }
    expired.counters = c
        .prepare_cached(
            "DELETE FROM usage_counters
             WHERE (period = 'day' AND start <= ?1) OR (period = 'month' AND start < ?2)",
        )?
        .execute(params![before - DAY_MS, month_start(before)])? as u64;
    Ok(expired)
}

/// Deletes up to `max` events logged before `before`, oldest first; how many
/// (see [`crate::Store::delete_expired_events`]).
pub(super) fn delete_expired_events(c: &Connection, before: i64, max: u32) -> Result<u64> {
    let n = c
        .prepare_cached(
            "DELETE FROM events WHERE cursor IN
                (SELECT cursor FROM events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )?
        .execute(params![before, i64::from(max)])?;
    Ok(n as u64)
}
