//! A delivery's outcome on SQLite, run by the writer: `sent`, or the end of
//! a message (`failed`, `unknown`), each with the event that tells of it
//! appended in the same transaction when one is given.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::counters::{not_attempted_error, quota_returned};
use crate::error::Result;
use crate::events::{NewEvent, Recorded};
use crate::types::{Claim, State};

use super::writer::Done;

/// An outcome to record.
pub(crate) enum OutcomeOp {
    MarkSent {
        claim: Claim,
        server_message_id: String,
        transport: String,
        now: i64,
        event: Option<NewEvent>,
    },
    Finish {
        claim: Claim,
        state: State,
        error: String,
        now: i64,
        event: Option<NewEvent>,
    },
}

impl From<OutcomeOp> for super::writer::Op {
    fn from(op: OutcomeOp) -> Self {
        Self::Outcome(op)
    }
}

impl OutcomeOp {
    /// An end, or an event a webhook may announce at once, is committed with
    /// a full fsync: a power cut must not take back a cursor a webhook
    /// already named. A bare `sent` is redone safely (the message is sent
    /// again under its client message id).
    pub(super) fn must_be_durable(&self) -> bool {
        match self {
            Self::MarkSent { event, .. } => event.is_some(),
            Self::Finish { .. } => true,
        }
    }

    pub(super) fn apply(self, c: &Connection) -> Result<Done> {
        let (applied, event, now) = match self {
            Self::MarkSent {
                claim,
                server_message_id,
                transport,
                now,
                event,
            } => {
                let n = c.prepare_cached("UPDATE outbox SET state = 'sent', server_message_id = ?1, transport = ?2, error = NULL, locked_until = NULL, text = NULL, image = NULL, updated_at = ?3 WHERE id = ?4 AND claim_token = ?5 AND state = 'sending'")?
                    .execute(params![server_message_id, transport, now, claim.id, claim.token])?;
                wipe_session_if_final(c, claim.id)?;
                (n == 1, event, now)
            }
            Self::Finish {
                claim,
                state,
                error,
                now,
                event,
            } => (finish(c, claim, state, &error, now)?, event, now),
        };
        let event = match event {
            Some(e) if applied => super::events::append(c, &[e], now)?.first().copied(),
            _ => None,
        };
        Ok(Done::Recorded(Recorded { applied, event }))
    }
}

fn finish(c: &Connection, claim: Claim, state: State, error: &str, now: i64) -> Result<bool> {
    let id = claim.id;
    let row = c
        .prepare_cached(
            "SELECT o.request_id, o.position, o.api_key_id, o.image_bytes, o.state, r.day_start, r.month_start
             FROM outbox o JOIN requests r ON r.id = o.request_id WHERE o.id = ?1 AND o.claim_token = ?2",
        )?
        .query_row(params![id, claim.token], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    let Some((request_id, position, api_key_id, image_bytes, was, day_start, month_start)) = row
    else {
        return Ok(false);
    };
    if State::parse(&was)? != State::Sending {
        return Ok(false);
    }
    c.prepare_cached("UPDATE outbox SET state = ?1, error = ?2, locked_until = NULL, text = NULL, image = NULL, updated_at = ?3 WHERE id = ?4")?
        .execute(params![state.as_str(), error, now, id])?;
    let (mut given_back, mut bytes_back) = quota_returned(state, image_bytes);
    // A message that failed (or may have been sent) ends its request: the
    // messages after it will not be attempted, and give their quota back too.
    if state != State::Sent {
        let not_attempted = not_attempted_error();
        let mut later = c.prepare_cached(
            "UPDATE outbox SET state = 'failed', error = ?1, text = NULL, image = NULL, updated_at = ?2
             WHERE request_id = ?3 AND position > ?4 AND state = 'accepted'
             RETURNING image_bytes",
        )?;
        let mut rows = later.query(params![not_attempted, now, request_id, position])?;
        while let Some(r) = rows.next()? {
            given_back += 1;
            bytes_back += r.get::<_, i64>(0)?;
        }
    }
    if given_back > 0 {
        c.prepare_cached(
            "UPDATE usage_counters SET messages = MAX(messages - ?1, 0), image_bytes = MAX(image_bytes - ?2, 0)
             WHERE api_key_id = ?3 AND ((period = 'day' AND start = ?4) OR (period = 'month' AND start = ?5) OR period = 'all')",
        )?
        .execute(params![given_back, bytes_back, api_key_id, day_start, month_start])?;
    }
    wipe_session_if_final(c, id)?;
    Ok(true)
}

/// A per-request session is kept only while its messages are undelivered.
fn wipe_session_if_final(c: &Connection, id: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE requests SET session_sealed = NULL
         WHERE id = (SELECT request_id FROM outbox WHERE id = ?1)
           AND session_sealed IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE request_id = requests.id AND state IN ('accepted', 'sending'))",
    )?
    .execute(params![id])?;
    Ok(())
}
