//! Stored accounts on SQLite: their sealed sessions, listening state and
//! status, and their conversations' catch-up cursors. Changes go through the
//! writer, each one statement; reads run on the read connections.

use rusqlite::{Connection, params};

use crate::columns::{ACCOUNT_COLUMNS, AccountRow};
use crate::error::Result;
use crate::types::{AccountInfo, AccountStatus, ConversationCursor};

use super::writer::{Done, Op};

/// A change to a stored account, run by the writer.
pub(crate) enum AccountOp {
    /// Adds or replaces its session (and makes it active again).
    Put(String, Vec<u8>, i64),
    /// Removes it, with its cursors.
    Remove(String),
    /// Listens for its DMs, or stops.
    Listen(String, bool),
    /// Records whether its session works.
    Status(String, AccountStatus, i64),
    /// Moves a conversation's catch-up cursor forward.
    Cursor {
        account: String,
        conversation_id: String,
        last_server_message_id: i64,
        last_index: i64,
    },
}

impl From<AccountOp> for Op {
    fn from(op: AccountOp) -> Self {
        Self::Accounts(op)
    }
}

impl AccountOp {
    pub(super) fn apply(self, c: &Connection) -> Result<Done> {
        let n = match self {
            Self::Put(name, sealed, now) => {
                // A fresh session makes an expired account active again.
                c.prepare_cached(
                    "INSERT INTO accounts (name, session_sealed, created_at, updated_at, status, status_changed_at)
                     VALUES (?1, ?2, ?3, ?3, 'active', ?3)
                     ON CONFLICT (name) DO UPDATE SET
                        session_sealed = excluded.session_sealed,
                        updated_at = excluded.updated_at,
                        status_changed_at = CASE WHEN status = 'active' THEN status_changed_at
                                                 ELSE excluded.updated_at END,
                        status = 'active'",
                )?
                .execute(params![name, sealed, now])?;
                return Ok(Done::Unit);
            }
            Self::Remove(name) => c
                .prepare_cached("DELETE FROM accounts WHERE name = ?1")?
                .execute(params![name])?,
            Self::Listen(name, listen) => c
                .prepare_cached("UPDATE accounts SET listen = ?2 WHERE name = ?1")?
                .execute(params![name, listen])?,
            Self::Status(name, status, now) => c
                .prepare_cached(
                    "UPDATE accounts SET
                        status_changed_at = CASE WHEN status = ?2 THEN status_changed_at ELSE ?3 END,
                        status = ?2
                     WHERE name = ?1",
                )?
                .execute(params![name, status.as_str(), now])?,
            Self::Cursor {
                account,
                conversation_id,
                last_server_message_id,
                last_index,
            } => c
                .prepare_cached(
                    "INSERT INTO conversation_cursors (account, conversation_id, last_server_message_id, last_index)
                     SELECT name, ?2, ?3, ?4 FROM accounts WHERE name = ?1
                     ON CONFLICT (account, conversation_id) DO UPDATE SET
                        last_server_message_id = MAX(last_server_message_id, excluded.last_server_message_id),
                        last_index = MAX(last_index, excluded.last_index)",
                )?
                .execute(params![
                    account,
                    conversation_id,
                    last_server_message_id,
                    last_index
                ])?,
        };
        Ok(Done::Flag(n == 1))
    }
}

/// Every stored account, by name.
pub(super) fn list(c: &Connection) -> Result<Vec<AccountInfo>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
    ))?;
    let rows = s.query_map([], |r| {
        Ok(AccountRow {
            name: r.get(0)?,
            created_at: r.get(1)?,
            updated_at: r.get(2)?,
            listen: r.get(3)?,
            status: r.get(4)?,
            status_changed_at: r.get(5)?,
        })
    })?;
    rows.map(|row| row?.info()).collect()
}

/// An account's catch-up cursors, by conversation.
pub(super) fn cursors(c: &Connection, account: &str) -> Result<Vec<ConversationCursor>> {
    let mut s = c.prepare_cached(
        "SELECT conversation_id, last_server_message_id, last_index FROM conversation_cursors
         WHERE account = ?1 ORDER BY conversation_id",
    )?;
    let rows = s.query_map(params![account], |r| {
        Ok(ConversationCursor {
            conversation_id: r.get(0)?,
            last_server_message_id: r.get(1)?,
            last_index: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
