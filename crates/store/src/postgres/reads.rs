//! The reads of one answer's snapshot: a request's status and a key's usage
//! totals, inside the snapshot's repeatable-read transaction.

use crate::columns::StatusRow;
use crate::counters::{add_counter, count};
use crate::error::Result;
use crate::types::*;

use super::writes::Tx;

pub(super) async fn read_status(
    tx: &Tx<'_>,
    request_id: &str,
    api_key_id: i64,
) -> Result<Option<RequestStatus>> {
    let s = tx
        .prepare_cached(
            "SELECT id, created_at, session_sealed IS NOT NULL FROM requests WHERE id = $1 AND api_key_id = $2",
        )
        .await?;
    let Some(head) = tx.query_opt(&s, &[&request_id, &api_key_id]).await? else {
        return Ok(None);
    };
    let s = tx
        .prepare_cached(
            "SELECT kind, client_message_id, state, server_message_id, transport, attempts, error, image_bytes
             FROM outbox WHERE request_id = $1 ORDER BY position",
        )
        .await?;
    let mut messages = Vec::new();
    let mut image_bytes = 0u64;
    for row in tx.query(&s, &[&request_id]).await? {
        image_bytes += count(row.try_get(7)?);
        let status = StatusRow {
            kind: row.try_get(0)?,
            client_message_id: row.try_get(1)?,
            state: row.try_get(2)?,
            server_message_id: row.try_get(3)?,
            transport: row.try_get(4)?,
            attempts: row.try_get(5)?,
            error: row.try_get(6)?,
        };
        messages.push(status.status()?);
    }
    Ok(Some(RequestStatus {
        id: head.try_get(0)?,
        created_at: head.try_get(1)?,
        holds_session: head.try_get(2)?,
        image_bytes,
        messages,
    }))
}

pub(super) async fn read_totals(
    tx: &Tx<'_>,
    api_key_id: i64,
    day_start: i64,
    month_start: i64,
) -> Result<UsageTotals> {
    let s = tx
        .prepare_cached(
            "SELECT period, messages, image_bytes FROM usage_counters
             WHERE api_key_id = $1 AND ((period = 'day' AND start = $2) OR (period = 'month' AND start = $3) OR period = 'all')",
        )
        .await?;
    let mut totals = UsageTotals::default();
    for row in tx
        .query(&s, &[&api_key_id, &day_start, &month_start])
        .await?
    {
        let period: String = row.try_get(0)?;
        add_counter(&mut totals, &period, row.try_get(1)?, row.try_get(2)?);
    }
    Ok(totals)
}
