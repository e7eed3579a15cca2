//! The gateway's error type.

use std::path::PathBuf;

/// What can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master key is malformed.
    #[error("invalid master key: {0}")]
    MasterKey(String),
    /// The master key file cannot be read, created or is too widely readable.
    #[error("master key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A secret could not be sealed.
    #[error("a secret could not be encrypted")]
    Seal,
    /// A sealed value does not open: wrong master key, or tampered data.
    #[error("a stored secret cannot be decrypted (wrong master key, or the data was altered)")]
    Unseal,
    /// A setting is unknown or has a bad value (the message names where it came from).
    #[error("configuration: {0}")]
    Config(String),
    /// An administrative input is not acceptable (a name, a limit, a session's form).
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tiktok_dm_store::Error),
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
