//! The event log on SQLite. Appends go through the writer (one transaction
//! for a call's events, committed in a group with a full fsync), so cursor
//! order is commit order; reads run on the read connections.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::columns::json_list;
use crate::error::Result;
use crate::events::{Appended, EventFilter, NewEvent, StoredEvent};

use super::writer::Done;

/// A change to the event log, run by the writer.
pub(crate) enum EventOp {
    /// Append events (see [`crate::Store::append_events`]).
    Append(Vec<NewEvent>, i64),
    /// Delete up to `max` events logged before `before`.
    DeleteExpired { before: i64, max: u32 },
}

impl From<EventOp> for super::writer::Op {
    fn from(op: EventOp) -> Self {
        Self::Events(op)
    }
}

impl EventOp {
    /// Whether the caller is told "stored" on the strength of it.
    pub(super) fn must_be_durable(&self) -> bool {
        matches!(self, Self::Append(..))
    }

    /// Whether it writes with more than one statement.
    pub(super) fn has_several_statements(&self) -> bool {
        matches!(self, Self::Append(..))
    }

    pub(super) fn apply(self, c: &Connection) -> Result<Done> {
        match self {
            Self::Append(events, now) => append(c, &events, now).map(Done::Appended),
            Self::DeleteExpired { before, max } => {
                super::retention::delete_expired_events(c, before, max).map(Done::Count)
            }
        }
    }
}

/// Logs each event unless its account's dedupe key was logged before, and
/// queues its webhook deliveries.
pub(super) fn append(c: &Connection, events: &[NewEvent], now: i64) -> Result<Vec<Appended>> {
    let mut insert = c.prepare_cached(
        "INSERT INTO events (account, event_type, conversation_id, dedupe_key, payload, occurred_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (account, dedupe_key) DO NOTHING
         RETURNING cursor",
    )?;
    let mut appended = Vec::with_capacity(events.len());
    for e in events {
        let cursor: Option<i64> = insert
            .query_row(
                params![
                    e.account,
                    e.event_type,
                    e.conversation_id,
                    e.dedupe_key,
                    e.payload,
                    e.occurred_at,
                    now
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(cursor) = cursor {
            super::webhooks::fan_out(c, cursor, now)?;
        }
        appended.push(cursor.map_or(Appended::Duplicate, |cursor| Appended::New { cursor }));
    }
    Ok(appended)
}

/// The columns a [`StoredEvent`] is read from, in its fields' order.
pub(super) const EVENT_COLUMNS: &str =
    "e.cursor, e.account, e.event_type, e.conversation_id, e.payload, e.occurred_at, e.created_at";

/// The event whose [`EVENT_COLUMNS`] start at column `at` of `row`.
pub(super) fn stored_event(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        cursor: row.get(at)?,
        account: row.get(at + 1)?,
        event_type: row.get(at + 2)?,
        conversation_id: row.get(at + 3)?,
        payload: row.get(at + 4)?,
        occurred_at: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
    })
}

/// Events after `after` that `filter` matches, in cursor order. The lists
/// go in as JSON arrays (one prepared statement for every filter); the
/// cursor is the rowid, so the scan starts at `after`.
pub(super) fn events_after(
    c: &Connection,
    after: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e
         WHERE e.cursor > ?1
           AND (?2 IS NULL OR e.account IN (SELECT value FROM json_each(?2)))
           AND (?3 IS NULL OR e.event_type IN (SELECT value FROM json_each(?3)))
         ORDER BY e.cursor
         LIMIT ?4"
    ))?;
    let rows = s.query_map(
        params![
            after,
            json_list(filter.accounts.as_deref()),
            json_list(filter.types.as_deref()),
            i64::from(limit)
        ],
        |r| stored_event(r, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The highest cursor in the log, 0 when it is empty.
pub(super) fn latest_cursor(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT COALESCE(MAX(cursor), 0) FROM events")?
            .query_row([], |r| r.get(0))?,
    )
}
