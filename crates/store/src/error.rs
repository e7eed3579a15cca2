//! The store's error type.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed (connection, I/O, constraint).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A value already exists (e.g. an API key name).
    #[error("{0} already exists")]
    Duplicate(String),
    /// The write group this change was in could not be committed.
    #[error("the database did not commit: {0}")]
    Commit(String),
    /// The writer task is gone (the runtime is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// A stored value is not what the schema allows.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
