//! Retention and the `meta` table on PostgreSQL: the same deletions and key
//! check value as the SQLite backend's, and the event log's batches.

use super::writes::Conn;
use crate::counters::{DAY_MS, count, month_start};
use crate::error::Result;
use crate::types::Expired;

/// The `meta` row holding the master key's check value.
const KEY_CHECK: &str = "master_key_check";

/// Deletes up to `max` expired requests with their messages in one
/// statement (a gateway sweeping at the same time skips the rows this one
/// holds), then the expired day counters and the expired month counters, each
/// in a statement of its own so that no sweep holds counter rows of two
/// periods at once (an ending message locks its key's rows all, day, month).
pub(super) async fn delete_expired(c: &Conn, before: i64, max: u32) -> Result<Expired> {
    let s = c
        .prepare_cached(
            "WITH doomed AS (
                SELECT r.id FROM requests r
                WHERE r.created_at < $1
                  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = r.id
                                  AND (o.state IN ('accepted', 'sending') OR o.updated_at >= $1))
                ORDER BY r.created_at
                LIMIT $2
                FOR UPDATE OF r SKIP LOCKED
             ), messages AS (
                DELETE FROM outbox o USING doomed d WHERE o.request_id = d.id RETURNING o.id
             ), gone AS (
                DELETE FROM requests r USING doomed d WHERE r.id = d.id RETURNING r.id
             )
             SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM messages)",
        )
        .await?;
    let row = c.query_one(&s, &[&before, &i64::from(max)]).await?;
    let days = c
        .execute(
            "DELETE FROM usage_counters WHERE period = 'day' AND start <= $1",
            &[&(before - DAY_MS)],
        )
        .await?;
    let months = c
        .execute(
            "DELETE FROM usage_counters WHERE period = 'month' AND start < $1",
            &[&month_start(before)],
        )
        .await?;
    Ok(Expired {
        requests: count(row.try_get(0)?),
        messages: count(row.try_get(1)?),
        counters: days + months,
    })
}

/// Deletes up to `max` events logged before `before`, oldest first; how many
/// (see [`crate::Store::delete_expired_events`]). A gateway sweeping at the
/// same time skips the rows this one holds.
pub(super) async fn delete_expired_events(c: &Conn, before: i64, max: u32) -> Result<u64> {
    let s = c
        .prepare_cached(
            "DELETE FROM events WHERE cursor IN
                (SELECT cursor FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    Ok(c.execute(&s, &[&before, &i64::from(max)]).await?)
}

/// The stored key check value, if any.
pub(super) async fn key_check(c: &Conn) -> Result<Option<Vec<u8>>> {
    Ok(
        c.query_opt("SELECT value FROM meta WHERE name = $1", &[&KEY_CHECK])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?,
    )
}

/// Stores `value` unless a value is stored; the one stored after. Two
/// statements: the read must see a row another process committed while the
/// insert waited for it.
pub(super) async fn put_key_check(c: &Conn, value: &[u8]) -> Result<Vec<u8>> {
    c.execute(
        "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&KEY_CHECK, &value],
    )
    .await?;
    Ok(
        c.query_one("SELECT value FROM meta WHERE name = $1", &[&KEY_CHECK])
            .await?
            .try_get(0)?,
    )
}
