//! The crate's error type.

/// Everything that can go wrong in this crate: decoding wire bytes, parsing
/// domain values, and reading content JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("input ends in the middle of a field")]
    Truncated,
    /// A varint ran longer than ten bytes.
    #[error("varint longer than ten bytes")]
    VarintOverflow,
    /// Wire types 3, 4 (groups), 6 and 7 are not used by this protocol.
    #[error("unsupported wire type {0}")]
    UnsupportedWireType(u8),
    /// A field number of zero or above 2^29-1.
    #[error("invalid field number {0}")]
    InvalidFieldNumber(u64),
    /// A `string` field held bytes that are not UTF-8.
    #[error("string field is not valid UTF-8")]
    InvalidUtf8,
    /// A gzip payload could not be inflated.
    #[error("gzip payload is corrupt: {0}")]
    Gzip(String),
    /// An `__lz4` payload could not be decompressed.
    #[error("LZ4 payload is corrupt: {0}")]
    Lz4(String),
    /// A frame's payload encoding is one this crate cannot read.
    #[error("unsupported payload encoding {0:?}")]
    UnsupportedEncoding(String),
    /// A domain value (id, content, ...) is malformed; the message says which.
    #[error("{0}")]
    Invalid(String),
}
