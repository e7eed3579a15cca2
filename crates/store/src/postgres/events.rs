//! The event log on PostgreSQL. Several gateways may append at once, and a
//! reader polling [`events_after`] must never skip an event: were cursors
//! drawn freely, a transaction holding cursor 7 could commit after one
//! holding cursor 8, and a reader that saw 8 would never read 7. So an
//! appending transaction takes an advisory lock first and holds it until it
//! commits; it draws its cursors under it, and the next appender draws its own
//! only once this one's are visible. Cursor order is then commit order.

use tokio_postgres::types::ToSql;

use super::writes::{Conn, Tx};
use crate::columns::text_list;
use crate::error::Result;
use crate::events::{Appended, EventFilter, NewEvent, Recorded, StoredEvent};

/// The key of the advisory lock appending transactions hold until they
/// commit ("tdm_evts"). One key per database: gateways on other schemas of
/// the same database share it, which only serialises their appends.
const APPEND_LOCK: i64 = 0x7464_6d5f_6576_7473;

/// Logs each event unless its account's dedupe key was logged before, in one
/// transaction (see the module's comment), with its webhook deliveries:
/// BEGIN; the lock with the cursors drawn (pipelined); the insert with the
/// deliveries (pipelined); COMMIT. Each event gets the next cursor drawn, in
/// the order given; a duplicate's cursor is left unused.
pub(super) async fn append(c: &mut Conn, events: &[NewEvent], now: i64) -> Result<Vec<Appended>> {
    let tx = c.transaction().await?;
    let appended = append_in(&tx, events, now).await?;
    tx.commit().await?;
    Ok(appended)
}

/// [`append`] within `tx`, which holds the lock until it commits.
pub(super) async fn append_in(tx: &Tx<'_>, events: &[NewEvent], now: i64) -> Result<Vec<Appended>> {
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    let draw = tx
        .prepare_cached(
            "SELECT nextval(pg_get_serial_sequence('events', 'cursor')) FROM generate_series(1, $1::int8)",
        )
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (cursor, account, event_type, conversation_id, dedupe_key, payload, occurred_at, created_at)
             SELECT t.*, $8::int8 FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
                 AS t(cursor, account, event_type, conversation_id, dedupe_key, payload, occurred_at)
             ORDER BY t.cursor
             ON CONFLICT (account, dedupe_key) DO NOTHING
             RETURNING cursor",
        )
        .await?;
    let fan_out = tx.prepare_cached(super::webhooks::FAN_OUT).await?;
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let (lock_params, draw_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&APPEND_LOCK], [&n]);
    // Pipelined: the server runs the draw once the lock is held.
    let (locked, drawn) = tokio::join!(
        tx.execute(&lock, &lock_params),
        tx.query(&draw, &draw_params)
    );
    locked?;
    let mut cursors = drawn?
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    cursors.sort_unstable();
    let accounts: Vec<&str> = events.iter().map(|e| e.account.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let conversations: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.conversation_id.as_deref())
        .collect();
    let keys: Vec<Option<&str>> = events.iter().map(|e| e.dedupe_key.as_deref()).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let occurred: Vec<i64> = events.iter().map(|e| e.occurred_at).collect();
    let params: [&(dyn ToSql + Sync); 8] = [
        &cursors,
        &accounts,
        &types,
        &conversations,
        &keys,
        &payloads,
        &occurred,
        &now,
    ];
    let fan_out_params: [&(dyn ToSql + Sync); 2] = [&cursors, &now];
    // Pipelined, run in order: the deliveries of the events just inserted
    // (a duplicate's cursor matches no row).
    let (inserted, queued) = tokio::join!(
        tx.query(&insert, &params),
        tx.execute(&fan_out, &fan_out_params)
    );
    let inserted = inserted?
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    queued?;
    Ok(cursors
        .into_iter()
        .map(|cursor| {
            if inserted.contains(&cursor) {
                Appended::New { cursor }
            } else {
                Appended::Duplicate
            }
        })
        .collect())
}

/// An outcome written in `tx` (when `applied`) with its `event`, appended in
/// the same transaction.
pub(super) async fn logged(
    tx: &Tx<'_>,
    applied: bool,
    event: NewEvent,
    now: i64,
) -> Result<Recorded> {
    let event = if applied {
        append_in(tx, &[event], now).await?.first().copied()
    } else {
        None
    };
    Ok(Recorded { applied, event })
}

/// Events after `after` that `filter` matches, in cursor order.
pub(super) async fn events_after(
    c: &Conn,
    after: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let s = c
        .prepare_cached(
            "SELECT cursor, account, event_type, conversation_id, payload, occurred_at, created_at FROM events
             WHERE cursor > $1
               AND ($2::text[] IS NULL OR account = ANY($2))
               AND ($3::text[] IS NULL OR event_type = ANY($3))
             ORDER BY cursor
             LIMIT $4",
        )
        .await?;
    let accounts = text_list(filter.accounts.as_deref());
    let types = text_list(filter.types.as_deref());
    c.query(&s, &[&after, &accounts, &types, &i64::from(limit)])
        .await?
        .iter()
        .map(|r| stored_event(r, 0))
        .collect()
}

/// The event whose columns (cursor, account, type, conversation, payload,
/// occurred, created) start at column `at` of `row`.
pub(super) fn stored_event(row: &tokio_postgres::Row, at: usize) -> Result<StoredEvent> {
    Ok(StoredEvent {
        cursor: row.try_get(at)?,
        account: row.try_get(at + 1)?,
        event_type: row.try_get(at + 2)?,
        conversation_id: row.try_get(at + 3)?,
        payload: row.try_get(at + 4)?,
        occurred_at: row.try_get(at + 5)?,
        created_at: row.try_get(at + 6)?,
    })
}

/// The highest cursor in the log, 0 when it is empty.
pub(super) async fn latest_cursor(c: &Conn) -> Result<i64> {
    let s = c
        .prepare_cached("SELECT COALESCE(MAX(cursor), 0) FROM events")
        .await?;
    Ok(c.query_one(&s, &[]).await?.try_get(0)?)
}
