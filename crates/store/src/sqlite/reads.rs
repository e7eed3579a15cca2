//! Reads of an API answer on SQLite: a request's status and a key's usage
//! counters.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::columns::StatusRow;
use crate::counters::{add_counter, count};
use crate::error::Result;
use crate::types::{RequestStatus, UsageTotals};

pub(super) fn read_status(
    c: &Connection,
    request_id: &str,
    api_key_id: i64,
) -> Result<Option<RequestStatus>> {
    let Some((id, created_at, holds_session)) = c
        .prepare_cached(
            "SELECT id, created_at, session_sealed IS NOT NULL FROM requests WHERE id = ?1 AND api_key_id = ?2",
        )?
        .query_row(params![request_id, api_key_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut s = c.prepare_cached(
        "SELECT kind, client_message_id, state, server_message_id, transport, attempts, error, image_bytes FROM outbox WHERE request_id = ?1 ORDER BY position",
    )?;
    let mut rows = s.query(params![request_id])?;
    let mut messages = Vec::new();
    let mut image_bytes = 0u64;
    while let Some(row) = rows.next()? {
        image_bytes += count(row.get(7)?);
        let status = StatusRow {
            kind: row.get(0)?,
            client_message_id: row.get(1)?,
            state: row.get(2)?,
            server_message_id: row.get(3)?,
            transport: row.get(4)?,
            attempts: row.get(5)?,
            error: row.get(6)?,
        };
        messages.push(status.status()?);
    }
    Ok(Some(RequestStatus {
        id,
        created_at,
        holds_session,
        image_bytes,
        messages,
    }))
}

pub(super) fn read_totals(
    c: &Connection,
    api_key_id: i64,
    day_start: i64,
    month_start: i64,
) -> Result<UsageTotals> {
    let mut s = c.prepare_cached(
        "SELECT period, messages, image_bytes FROM usage_counters
         WHERE api_key_id = ?1 AND ((period = 'day' AND start = ?2) OR (period = 'month' AND start = ?3) OR period = 'all')",
    )?;
    let mut rows = s.query(params![api_key_id, day_start, month_start])?;
    let mut totals = UsageTotals::default();
    while let Some(row) = rows.next()? {
        let period: String = row.get(0)?;
        add_counter(&mut totals, &period, row.get(1)?, row.get(2)?);
    }
    Ok(totals)
}
