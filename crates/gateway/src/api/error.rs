//! One error type for every API answer: a stable code (which fixes the HTTP
//! status), a message, and the same JSON shape as a success (`success: false`).
//! Internal errors are logged with their cause and shown only as a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tiktok_dm_store::{DeliveryError, FailureCode};

macro_rules! codes {
    ($($variant:ident = $code:literal, $status:literal, $meaning:literal;)*) => {
        /// Every error code the API answers with. The code fixes the status; the
        /// OpenAPI document and the README list them all (a test checks both).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in documentation order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The code as it appears in `error.code`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                let code: u16 = match self { $(Self::$variant => $status,)* };
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// What it means, for the documentation.
            pub fn meaning(self) -> &'static str {
                match self { $(Self::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    InvalidJson = "invalid_json", 400, "The body is not a valid JSON request of this endpoint (unknown fields are refused).";
    InvalidForm = "invalid_form", 400, "The multipart form cannot be read, or has an unknown field.";
    InvalidBody = "invalid_body", 400, "The body cannot be read.";
    BodyTooLarge = "body_too_large", 413, "The body is larger than the gateway accepts (derived from the image limit).";
    MessageEmpty = "message_empty", 400, "Text and image are both empty.";
    ConversationIdMissing = "conversation_id_missing", 400, "Neither conversation_id nor to_uid is given.";
    ConversationIdInvalid = "conversation_id_invalid", 400, "conversation_id is not of the form 0:1:UID:UID.";
    ConversationShortIdInvalid = "conversation_short_id_invalid", 400, "conversation_short_id is not a positive 64-bit number.";
    ToUidInvalid = "to_uid_invalid", 400, "to_uid is not a user id (a positive 64-bit number), is the sending account's own, or comes with conversation_id or conversation_short_id.";
    TextTooLong = "text_too_long", 400, "The text is longer than TikTok accepts (6000 UTF-16 units).";
    TextInvalid = "text_invalid", 400, "The text contains a NUL character (U+0000), which the gateway does not store.";
    ImageInvalid = "image_invalid", 400, "The image is not a JPEG, PNG, GIF or WebP, is cut short, or its base64 or data URI is malformed.";
    ImageTooLarge = "image_too_large", 413, "The image is over the image limit.";
    SessionMissing = "session_missing", 400, "No TikTok session: send X-TikTok-Session or name a stored account.";
    SessionInvalidFormat = "session_invalid_format", 400, "X-TikTok-Session is not a TikTok session (a sessionid, a Cookie header or a cookie export), or not visible ASCII.";
    AccountNotFound = "account_not_found", 400, "The named stored account does not exist, or this API key may not send as it (both answer alike).";
    WebhookUrlInvalid = "webhook_url_invalid", 400, "A webhook's url is not an absolute http(s) URL of at most 2048 bytes with a host, without user name, password or fragment, or its host does not resolve.";
    WebhookUrlNotAllowed = "webhook_url_not_allowed", 400, "A webhook's url reaches a loopback, private, link-local, shared or reserved address (allowed only with allow_private_webhooks).";
    WebhookEventsInvalid = "webhook_events_invalid", 400, "A webhook's events list is empty or names an unknown event type.";
    CursorInvalid = "cursor_invalid", 400, "since is not a cursor: a whole number from 0, as a number or a decimal string.";
    WebhookNotFound = "webhook_not_found", 404, "This API key has no webhook with this id.";
    WebhookLimitReached = "webhook_limit_reached", 409, "This API key has 10 webhooks already, the most it may have.";
    ApiKeyMissing = "api_key_missing", 401, "No API key (Authorization: Bearer or X-API-Key).";
    ApiKeyInvalid = "api_key_invalid", 401, "The API key is not known.";
    ApiKeyRevoked = "api_key_revoked", 401, "The API key was revoked.";
    AdminKeyMissing = "admin_key_missing", 401, "The admin API needs the admin key.";
    AdminKeyInvalid = "admin_key_invalid", 401, "The admin key is wrong.";
    AdminDisabled = "admin_disabled", 403, "No admin key is configured, so the admin API is off.";
    InvalidRequest = "invalid_request", 400, "An admin request has a bad value (a name, a limit, a session), or a value the database cannot store (a NUL character).";
    NotFound = "not_found", 404, "No such message request, key, account or endpoint.";
    MethodNotAllowed = "method_not_allowed", 405, "The endpoint exists but does not take this method (Allow lists the ones it takes).";
    AlreadyExists = "already_exists", 409, "A key with this name exists.";
    IdempotencyConflict = "idempotency_conflict", 409, "This Idempotency-Key was used for a different request.";
    IdempotencyKeyInvalid = "idempotency_key_invalid", 400, "Idempotency-Key is longer than 255 characters or not visible ASCII.";
    RequestTimeout = "request_timeout", 408, "The request took longer than request_timeout_secs; for a send, before it was accepted (nothing was kept). An accepted send is always answered with its id.";
    QuotaExceeded = "quota_exceeded", 429, "The key's daily or monthly quota is used up; Retry-After says when it resets.";
    TooManyConcurrentRequests = "too_many_concurrent_requests", 429, "This API key already has max_requests_per_key requests in progress (a send counts until it is answered); nothing was read or kept. Retry-After: 1.";
    SessionRejected = "session_rejected", 422, "TikTok does not accept the session (logged out or expired).";
    BusinessRejected = "business_rejected", 422, "TikTok refused the message; tiktok_code and TikTok's tip text are included (e.g. 7193).";
    ConversationNotFound = "conversation_not_found", 422, "TikTok does not know the conversation, or the account is not in it.";
    RequestRejected = "request_rejected", 422, "TikTok called the request invalid (status 4), as when conversation_short_id does not belong to conversation_id.";
    UpstreamRateLimited = "upstream_rate_limited", 429, "TikTok rate-limited the account and the retries ran out.";
    UpstreamRejected = "upstream_rejected", 502, "TikTok's gateway refused the request (a protocol-level rejection).";
    UpstreamUnavailable = "upstream_unavailable", 502, "TikTok (or its WebSocket) could not be reached and the retries ran out.";
    MediaInvalid = "media_invalid", 502, "A received image cannot be opened: its blob does not open under its key (the tag does not verify), is over the image limit, or its message names no http(s) URL.";
    OutcomeUnknown = "outcome_unknown", 504, "The message may or may not have been delivered; it was retried with the same client message id and no answer came.";
    DatabaseUnavailable = "database_unavailable", 503, "The gateway's database cannot be reached or cannot take writes now (a server restarting, a full disk); nothing was accepted, unless the answer to a commit was lost, so retry with the same Idempotency-Key. Retry-After says when.";
    InternalError = "internal_error", 500, "A fault in the gateway; the details are in its log.";
}

/// `Retry-After` when the database is unavailable: long enough for a server
/// restart to be under way, short enough not to hold an automation up.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    /// The code (and with it the status).
    pub code: ErrorCode,
    /// A message for the user (never a secret).
    pub message: String,
    /// TikTok's code, when there is one.
    pub tiktok_code: Option<i64>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
    /// Limit, remaining and reset (Unix seconds) for the `X-RateLimit-*` headers.
    pub rate_limit: Option<(u64, u64, u64)>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            tiktok_code: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 500; the cause is logged, the caller sees a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "internal error; the details are in the gateway's log",
        )
    }

    /// 503 with `Retry-After`; the cause is logged, not shown (it may name the
    /// database's host).
    pub fn database_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        let mut e = Self::new(
            ErrorCode::DatabaseUnavailable,
            "the gateway's database is unavailable; try again shortly (with the same Idempotency-Key, a send is never taken twice)",
        );
        e.retry_after = Some(DATABASE_RETRY_AFTER_SECS);
        e
    }

    /// The answer for a delivery failure the worker recorded. Every code is
    /// matched here, so a new one does not compile until it has an answer.
    pub fn from_delivery(error: &DeliveryError) -> Self {
        use FailureCode as F;
        let code = match error {
            DeliveryError::Send { code, .. } => match code {
                F::SessionRejected | F::SessionInvalidFormat => ErrorCode::SessionRejected,
                F::BusinessRejected => ErrorCode::BusinessRejected,
                F::ConversationNotFound => ErrorCode::ConversationNotFound,
                F::RequestRejected => ErrorCode::RequestRejected,
                F::RateLimited => ErrorCode::UpstreamRateLimited,
                F::ImageInvalid | F::ImageTooLarge => ErrorCode::ImageInvalid,
                F::OutcomeUnknown => ErrorCode::OutcomeUnknown,
                F::GatewayRejected => ErrorCode::UpstreamRejected,
                // Retried until the attempts ran out.
                F::UpstreamError
                | F::ConnectionFailed
                | F::WebsocketUnavailable
                | F::InvalidTicket
                | F::UploadFailed => ErrorCode::UpstreamUnavailable,
                // The gateway validated every value before accepting it, so a
                // value the client refuses at delivery is the gateway's fault.
                F::InvalidInput => ErrorCode::InternalError,
            },
            // Never the first failure of a request: the one before it is.
            DeliveryError::NotAttempted => ErrorCode::UpstreamUnavailable,
            DeliveryError::Corrupt { .. } => ErrorCode::InternalError,
        };
        // The gateway's own faults are shown only as a generic message; the
        // details went to its log when they happened.
        let message = match (code, error) {
            (ErrorCode::InternalError, DeliveryError::Corrupt { .. }) => {
                "the gateway cannot read back the message it stored; the details are in its log"
            }
            (ErrorCode::InternalError, _) => "internal error; the details are in the gateway's log",
            _ => error.message(),
        };
        Self {
            tiktok_code: error.tiktok_code(),
            ..Self::new(code, message)
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl From<tiktok_dm_store::Error> for ApiError {
    fn from(e: tiktok_dm_store::Error) -> Self {
        match e {
            tiktok_dm_store::Error::Invalid(_) => {
                Self::new(ErrorCode::InvalidRequest, e.to_string())
            }
            tiktok_dm_store::Error::Unavailable(_) => Self::database_unavailable(&e),
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(c) = self.tiktok_code {
            error["tiktok_code"] = json!(c);
        }
        let body = json!({
            "success": false,
            "message": self.message,
            "messages": [],
            "usage": null,
            "quota": null,
            "error": error,
        });
        let mut response = (self.code.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        if let Some(values) = self.rate_limit {
            insert_rate_limit_headers(&mut response, values);
        }
        response
    }
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds).
pub(crate) fn insert_rate_limit_headers(
    response: &mut Response,
    (limit, remaining, reset): (u64, u64, u64),
) {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}
