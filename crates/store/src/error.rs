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
    /// A stored value is not what the schema allows.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e)
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
