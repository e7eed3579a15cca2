//! Stored accounts on PostgreSQL: their sealed sessions, listening state and
//! status, and their conversations' catch-up cursors; each change one
//! statement.

use super::writes::Conn;
use crate::columns::{ACCOUNT_COLUMNS, AccountRow};
use crate::error::Result;
use crate::types::{AccountInfo, AccountStatus, ConversationCursor};

/// Adds or replaces a session; a fresh one makes the account active again.
pub(super) async fn put(c: &Conn, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
    let s = c
        .prepare_cached(
            "INSERT INTO accounts (name, session_sealed, created_at, updated_at, status, status_changed_at)
             VALUES ($1, $2, $3, $3, 'active', $3)
             ON CONFLICT (name) DO UPDATE SET
                session_sealed = excluded.session_sealed,
                updated_at = excluded.updated_at,
                status_changed_at = CASE WHEN accounts.status = 'active' THEN accounts.status_changed_at
                                         ELSE excluded.updated_at END,
                status = 'active'",
        )
        .await?;
    c.execute(&s, &[&name, &session_sealed, &now]).await?;
    Ok(())
}

/// Every stored account, by name.
pub(super) async fn list(c: &Conn) -> Result<Vec<AccountInfo>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .await?;
    c.query(&s, &[])
        .await?
        .iter()
        .map(|r| {
            AccountRow {
                name: r.try_get(0)?,
                created_at: r.try_get(1)?,
                updated_at: r.try_get(2)?,
                listen: r.try_get(3)?,
                status: r.try_get(4)?,
                status_changed_at: r.try_get(5)?,
            }
            .info()
        })
        .collect()
}

/// Removes an account (its cursors go with it); whether there was one.
pub(super) async fn remove(c: &Conn, name: &str) -> Result<bool> {
    let n = c
        .execute("DELETE FROM accounts WHERE name = $1", &[&name])
        .await?;
    Ok(n == 1)
}

/// Listens for an account's DMs, or stops; whether there is such an account.
pub(super) async fn set_listen(c: &Conn, name: &str, listen: bool) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE accounts SET listen = $2 WHERE name = $1",
            &[&name, &listen],
        )
        .await?;
    Ok(n == 1)
}

/// Records whether an account's session works; whether there is one.
pub(super) async fn set_status(
    c: &Conn,
    name: &str,
    status: AccountStatus,
    now: i64,
) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE accounts SET
                status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE $3 END,
                status = $2
             WHERE name = $1",
            &[&name, &status.as_str(), &now],
        )
        .await?;
    Ok(n == 1)
}

/// Moves a conversation's cursor forward (each value its maximum); whether
/// there is such an account.
pub(super) async fn set_cursor(
    c: &Conn,
    account: &str,
    conversation_id: &str,
    last_server_message_id: i64,
    last_index: i64,
) -> Result<bool> {
    let s = c
        .prepare_cached(
            "INSERT INTO conversation_cursors (account, conversation_id, last_server_message_id, last_index)
             SELECT name, $2, $3, $4 FROM accounts WHERE name = $1
             ON CONFLICT (account, conversation_id) DO UPDATE SET
                last_server_message_id = GREATEST(conversation_cursors.last_server_message_id,
                                                  excluded.last_server_message_id),
                last_index = GREATEST(conversation_cursors.last_index, excluded.last_index)",
        )
        .await?;
    let n = c
        .execute(
            &s,
            &[
                &account,
                &conversation_id,
                &last_server_message_id,
                &last_index,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// An account's catch-up cursors, by conversation.
pub(super) async fn cursors(c: &Conn, account: &str) -> Result<Vec<ConversationCursor>> {
    let s = c
        .prepare_cached(
            "SELECT conversation_id, last_server_message_id, last_index FROM conversation_cursors
             WHERE account = $1 ORDER BY conversation_id COLLATE \"C\"",
        )
        .await?;
    c.query(&s, &[&account])
        .await?
        .iter()
        .map(|r| {
            Ok(ConversationCursor {
                conversation_id: r.try_get(0)?,
                last_server_message_id: r.try_get(1)?,
                last_index: r.try_get(2)?,
            })
        })
        .collect()
}
