//! The `meta` table on SQLite: the master key's check value.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::error::Result;

/// The `meta` row holding the master key's check value.
pub(super) const KEY_CHECK: &str = "master_key_check";

/// The stored key check value, if any.
pub(super) fn key_check(c: &Connection) -> Result<Option<Vec<u8>>> {
    Ok(c.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row(params![KEY_CHECK], |r| r.get(0))
        .optional()?)
}

/// Stores `value` unless a value is stored; the one stored after.
pub(super) fn put_key_check(c: &Connection, value: &[u8]) -> Result<Vec<u8>> {
    c.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![KEY_CHECK, value])?;
    Ok(c.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row(params![KEY_CHECK], |r| r.get(0))?)
}
