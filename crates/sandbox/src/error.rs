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
    /// The TLS certificate cannot be used (or made).
    #[error("TLS certificate: {0}")]
    TlsCertificate(String),
    /// The TLS private key cannot be used; the message never quotes it.
    #[error("TLS private key: {0}")]
    TlsKey(String),
    /// rustls refused the certificate and key, e.g. the key is not the
    /// certificate's.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Serving failed.
    #[error("sandbox server failed: {0}")]
    Io(#[from] std::io::Error),
}
