//! The sandbox's error type.

/// What can go wrong starting or configuring the sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The seed data is inconsistent.
    #[error("invalid sandbox seed: {0}")]
    Seed(String),
    /// An id in the seed data is malformed.
    #[error("invalid sandbox seed: {0}")]
    Id(#[from] tiktok_dm_proto::DecodeError),
    /// Serving failed.
    #[error("sandbox server failed: {0}")]
    Io(#[from] std::io::Error),
}
