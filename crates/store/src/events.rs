//! The event log's values (issue 18): what happened on a stored account
//! (a DM received, read, a reaction, ...), logged once in commit order. Event
//! types and payloads are the gateway's strings (the payload is JSON text,
//! stored as is).

use serde::Serialize;

use crate::types::check;

/// Events deleted per statement by [`crate::Store::delete_expired_events`],
/// which repeats until a batch is short: no sweep holds the database (the
/// SQLite writer) for long.
pub(crate) const EXPIRED_EVENTS_BATCH: u32 = 5_000;

/// An event to append to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The stored account it happened on.
    pub account: String,
    /// `message.received`, `message.read`, `typing`, `reaction`,
    /// `message.deleted`, `message.sent`, `message.failed`, ...
    pub event_type: String,
    /// The conversation it is about, when there is one.
    pub conversation_id: Option<String>,
    /// Unique per account when present: an event whose key was logged before
    /// is not logged again ([`Appended::Duplicate`]).
    pub dedupe_key: Option<String>,
    /// JSON text, stored as is.
    pub payload: String,
    /// When it happened (ms).
    pub occurred_at: i64,
}

impl NewEvent {
    /// Refuses text no backend may store (see [`crate::types::storable`]).
    pub(crate) fn check(&self) -> crate::Result<()> {
        check("an account name", &self.account)?;
        check("an event type", &self.event_type)?;
        check("an event payload", &self.payload)?;
        if let Some(c) = &self.conversation_id {
            check("a conversation id", c)?;
        }
        if let Some(k) = &self.dedupe_key {
            check("an event dedupe key", k)?;
        }
        Ok(())
    }
}

/// What recording a delivery's outcome with its event did
/// ([`Store::mark_sent`](crate::Store::mark_sent)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Whether the outcome was written (the claim was still the row's).
    pub applied: bool,
    /// What became of the event: `None` when none was given or the outcome
    /// was not written.
    pub event: Option<Appended>,
}

/// What [`Store::append_events`](crate::Store::append_events) did with one
/// event, in the order given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Logged under this cursor.
    New {
        /// Its cursor.
        cursor: i64,
    },
    /// An event of the same account and dedupe key was logged before (or
    /// earlier in the same call): nothing was stored.
    Duplicate,
}

impl Appended {
    /// Its cursor, when it was logged.
    pub fn cursor(self) -> Option<i64> {
        match self {
            Self::New { cursor } => Some(cursor),
            Self::Duplicate => None,
        }
    }
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Its place in the log: strictly increasing in commit order, so a reader
    /// that has seen cursor N never later finds an event below N.
    pub cursor: i64,
    /// The stored account it happened on.
    pub account: String,
    /// Its type.
    pub event_type: String,
    /// The conversation it is about.
    pub conversation_id: Option<String>,
    /// JSON text, as given.
    pub payload: String,
    /// When it happened (ms).
    pub occurred_at: i64,
    /// When it was logged (ms); retention counts from here.
    pub created_at: i64,
}

/// Which events [`Store::events_after`](crate::Store::events_after) reads.
/// `None` matches all; an empty list matches none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these accounts' events.
    pub accounts: Option<Vec<String>>,
    /// Only events of these types.
    pub types: Option<Vec<String>>,
}
