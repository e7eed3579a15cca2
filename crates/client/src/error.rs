//! The client's error type and its retry classification.

use std::time::Duration;

pub use tiktok_dm_proto::status::{RetryClass, SendRejection};

/// Everything a send can fail with. Messages never contain the session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session input could not be read as a cookie header, a cookie export
    /// or a `sessionid` value.
    #[error("invalid TikTok session: {0}")]
    InvalidCredentials(String),
    /// TikTok does not consider the session logged in (page without a user, or
    /// the socket handshake refused as unauthorised).
    #[error("TikTok session is not valid: {0}")]
    InvalidSession(String),
    /// A value given by the caller is invalid (text, ids, configuration).
    #[error("{0}")]
    InvalidInput(String),
    /// The image cannot be sent: unreadable, unsupported, or too large.
    #[error(transparent)]
    InvalidImage(#[from] crate::image::ImageProblem),
    /// TikTok answered and refused the send.
    #[error(transparent)]
    Rejected(#[from] SendRejection),
    /// No answer in time. The message may have been delivered.
    #[error("no answer from TikTok within {}ms; the message may have been delivered", .0.as_millis())]
    Timeout(Duration),
    /// The connection failed before the request could be sent: not delivered.
    #[error("could not connect to TikTok: {0}")]
    Connect(String),
    /// The connection broke after the request was sent: the message may have been delivered.
    #[error("connection to TikTok lost before an answer: {0}")]
    ConnectionLost(String),
    /// The WebSocket handshake was refused with an HTTP status.
    #[error("TikTok refused the WebSocket connection (HTTP {status})")]
    HandshakeRefused {
        /// The HTTP status.
        status: u16,
    },
    /// The HTTP API answered with a non-200 status.
    #[error("TikTok's HTTP API answered HTTP {status}")]
    HttpStatus {
        /// The HTTP status.
        status: u16,
    },
    /// An answer could not be decoded: the message may have been delivered.
    #[error("TikTok's answer could not be read: {0}")]
    Protocol(String),
    /// The session's identity (web device id, uid) could not be discovered.
    #[error("could not read the TikTok session's identity from the messages page: {0}")]
    Discovery(String),
    /// A step of the image upload failed.
    #[error("image upload failed at {step}: {message}")]
    Upload {
        /// credentials, apply, upload, commit.
        step: &'static str,
        /// What went wrong (never contains credentials).
        message: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// The session was closed.
    #[error("the session is closed")]
    Closed,
}

impl Error {
    /// What a caller may do next. `Ambiguous` means: retry only with the same
    /// client message id.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            Self::Rejected(r) => r.retry_class(),
            Self::Timeout(_) | Self::ConnectionLost(_) | Self::Protocol(_) => RetryClass::Ambiguous,
            Self::Connect(_) | Self::Closed => RetryClass::Retryable,
            Self::HandshakeRefused { status } | Self::HttpStatus { status } => match status {
                429 => RetryClass::RetryAfter(Duration::from_secs(60)),
                500..=599 => RetryClass::Retryable,
                _ => RetryClass::Permanent,
            },
            Self::Discovery(_) => RetryClass::Retryable,
            Self::Upload {
                retryable: true, ..
            } => RetryClass::Retryable,
            Self::Upload { .. } => RetryClass::Permanent,
            Self::InvalidCredentials(_)
            | Self::InvalidSession(_)
            | Self::InvalidInput(_)
            | Self::InvalidImage(_) => RetryClass::Permanent,
        }
    }

    /// A stable, machine-readable code for this failure (used in JSON output).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredentials(_) => "session_invalid_format",
            Self::InvalidSession(_) => "session_rejected",
            Self::InvalidInput(_) => "invalid_input",
            Self::InvalidImage(crate::image::ImageProblem::TooLarge { .. }) => "image_too_large",
            Self::InvalidImage(_) => "image_invalid",
            Self::Rejected(r) => match r {
                SendRejection::InvalidSession { .. } => "session_rejected",
                SendRejection::GatewayRejected => "gateway_rejected",
                SendRejection::InvalidTicket => "invalid_ticket",
                SendRejection::ConversationNotFound { .. } => "conversation_not_found",
                SendRejection::InvalidRequest { .. } => "request_rejected",
                SendRejection::RateLimited { .. } => "rate_limited",
                SendRejection::ServerError { .. } => "upstream_error",
                SendRejection::Business(_) => "business_rejected",
                SendRejection::MalformedReply => "outcome_unknown",
                _ => "upstream_error",
            },
            Self::Timeout(_) | Self::ConnectionLost(_) | Self::Protocol(_) => "outcome_unknown",
            Self::Connect(_) | Self::Closed => "connection_failed",
            Self::HandshakeRefused { status: 401 | 403 } => "session_rejected",
            Self::HandshakeRefused { .. } => "websocket_unavailable",
            Self::HttpStatus { .. } => "upstream_error",
            Self::Discovery(_) => "connection_failed",
            Self::Upload { .. } => "upload_failed",
        }
    }

    /// TikTok's own code, when the failure carries one (status or business code).
    pub fn tiktok_code(&self) -> Option<i64> {
        match self {
            Self::Rejected(r) => r.tiktok_code(),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
