//! The client's error type and its retry classification.

use std::time::Duration;

pub use tiktok_dm_proto::message::FailureCode;
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
    /// A received image cannot be opened: its blob does not open under its
    /// key (the tag does not verify), is over the image limit, or the
    /// message names no URL to fetch with the session. Never the key or URL.
    #[error("the received image cannot be used: {0}")]
    MediaInvalid(String),
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
            | Self::InvalidImage(_)
            | Self::MediaInvalid(_) => RetryClass::Permanent,
        }
    }

    /// Whether the message may have reached TikTok in this attempt: TikTok
    /// answered, or the request went out and no answer came. False when the
    /// attempt failed before that (no connection, the handshake or the
    /// session's page refused, the image upload), so that a caller retrying
    /// through an outage need not count those against its limit.
    pub fn reached_tiktok(&self) -> bool {
        matches!(
            self,
            Self::Rejected(_)
                | Self::Timeout(_)
                | Self::ConnectionLost(_)
                | Self::Protocol(_)
                | Self::HttpStatus { .. }
        )
    }

    /// A stable, machine-readable code for this failure (used in JSON output).
    pub fn code(&self) -> &'static str {
        self.failure_code().as_str()
    }

    /// The failure's code, typed: what a delivery's outcome is recorded with.
    pub fn failure_code(&self) -> FailureCode {
        use FailureCode as C;
        match self {
            Self::InvalidCredentials(_) => C::SessionInvalidFormat,
            Self::InvalidSession(_) => C::SessionRejected,
            Self::InvalidInput(_) => C::InvalidInput,
            Self::InvalidImage(crate::image::ImageProblem::TooLarge { .. }) => C::ImageTooLarge,
            Self::InvalidImage(_) | Self::MediaInvalid(_) => C::ImageInvalid,
            Self::Rejected(r) => match r {
                SendRejection::InvalidSession { .. } => C::SessionRejected,
                SendRejection::GatewayRejected => C::GatewayRejected,
                SendRejection::InvalidTicket => C::InvalidTicket,
                SendRejection::ConversationNotFound { .. } => C::ConversationNotFound,
                SendRejection::InvalidRequest { .. } => C::RequestRejected,
                SendRejection::RateLimited { .. } => C::RateLimited,
                SendRejection::ServerError { .. } => C::UpstreamError,
                SendRejection::Business(_) => C::BusinessRejected,
                SendRejection::MalformedReply => C::OutcomeUnknown,
                _ => C::UpstreamError,
            },
            Self::Timeout(_) | Self::ConnectionLost(_) | Self::Protocol(_) => C::OutcomeUnknown,
            Self::Connect(_) | Self::Closed => C::ConnectionFailed,
            Self::HandshakeRefused { status: 401 | 403 } => C::SessionRejected,
            Self::HandshakeRefused { .. } => C::WebsocketUnavailable,
            Self::HttpStatus { .. } => C::UpstreamError,
            Self::Discovery(_) => C::ConnectionFailed,
            Self::Upload { .. } => C::UploadFailed,
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

/// A caller's value that does not parse ([`Target::parse`](crate::Target::parse),
/// [`Outgoing::new`](crate::compose::Outgoing)) is invalid input. The client
/// never turns TikTok's bytes into an error this way: an answer it cannot
/// decode is [`Error::Protocol`].
impl From<tiktok_dm_proto::DecodeError> for Error {
    fn from(e: tiktok_dm_proto::DecodeError) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
