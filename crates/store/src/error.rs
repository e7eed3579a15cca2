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
    /// The write group this change was in could not be committed.
    #[error("the database did not commit: {0}")]
    Commit(String),
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
        Self::Database(e)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message when there is one (its `Display` alone is
        // "db error"); neither form carries the connection settings.
        match e.as_db_error() {
            Some(db) => Self::Postgres(format!("{}: {}", db.code().code(), db.message())),
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
                Self::Postgres(message)
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::Postgres(other.to_string()),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
