//! The store's error type.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed (I/O, a constraint, a busy file). Not marked as a
    /// source: the message already carries rusqlite's, and a chain printer would
    /// repeat it.
    #[error("database error: {0}")]
    Database(rusqlite::Error),
    /// PostgreSQL failed, or no connection could be had from the pool.
    #[error("database error: {0}")]
    Postgres(String),
    /// The database cannot be opened or migrated.
    #[error("database setup failed: {0}")]
    Migration(String),
    /// A value already exists (e.g. an API key name).
    #[error("{0} already exists")]
    Duplicate(String),
    /// A row the operation needs does not exist (a webhook's API key).
    #[error("{0} does not exist")]
    NotFound(String),
    /// A limit on how many rows of a kind one owner may have was reached (an
    /// API key's webhooks); nothing was written.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// The write group this change was in could not be committed.
    #[error("the database did not commit: {0}")]
    Commit(String),
    /// The database cannot be reached or cannot take the change now: the
    /// server is down or restarting, the connection dropped, the disk is full
    /// or failing, another process held the write lock past the busy timeout.
    /// Worth trying again later. The operation did not happen, except that a
    /// PostgreSQL commit whose answer was lost may have.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The writer thread is gone (the process is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// A value this store will not write: a text with U+0000, which
    /// PostgreSQL's `text` cannot hold (SQLite refuses it too, so that both
    /// backends answer alike).
    #[error("cannot store {0}: it contains a NUL character (U+0000)")]
    Invalid(&'static str),
    /// A stored value is not what the schema allows.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure
                ) =>
            {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Database(e),
        }
    }
}

/// Whether a PostgreSQL error says the server or the connection is not there
/// (rather than that the statement was wrong): a closed connection, an I/O
/// error underneath (refused, reset, timed out), or SQLSTATE class 08
/// (connection exception), 53 (insufficient resources) or 57P01 – 57P03 (the
/// server shutting down or starting).
fn postgres_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message when there is one (its `Display` alone is
        // "db error"); neither form carries the connection settings.
        let unavailable = postgres_unavailable(&e);
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => {
                // The cause too ("invalid peer certificate: UnknownIssuer"),
                // which the driver's `Display` leaves out for some kinds.
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    let text = cause.to_string();
                    if !message.contains(&text) {
                        message = format!("{message}: {text}");
                    }
                    source = cause.source();
                }
                message
            }
        };
        if unavailable {
            Self::Unavailable(message)
        } else {
            Self::Postgres(message)
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            // A timeout waiting for a connection, or the pool closed.
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_full_or_failing_sqlite_database_is_unavailable_and_nothing_else_is() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR,
        ] {
            let e = Error::from(failure(code));
            assert!(matches!(e, Error::Unavailable(_)), "{code}: {e:?}");
        }
        for code in [
            rusqlite::ffi::SQLITE_CONSTRAINT,
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_NOTADB,
        ] {
            let e = Error::from(failure(code));
            assert!(matches!(e, Error::Database(_)), "{code}: {e:?}");
        }
    }
}
