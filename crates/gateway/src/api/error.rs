//! One error type for every API answer: a status, a stable code, a message, and
//! the same JSON shape as a success (`success: false`). Internal errors are
//! logged with their cause and shown only as a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (see the README's table).
    pub code: &'static str,
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
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            tiktok_code: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 for a missing, invalid or revoked key.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 500; the cause is logged, the caller sees a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the details are in the gateway's log",
        )
    }

    /// The HTTP status for a delivery failure recorded by the worker, by its code.
    pub fn from_delivery(code: &str, message: String, tiktok_code: Option<i64>) -> Self {
        let (status, code) = match code {
            "session_rejected" | "session_invalid_format" => {
                (StatusCode::UNPROCESSABLE_ENTITY, "session_rejected")
            }
            "business_rejected" => (StatusCode::UNPROCESSABLE_ENTITY, "business_rejected"),
            "conversation_not_found" => {
                (StatusCode::UNPROCESSABLE_ENTITY, "conversation_not_found")
            }
            "rate_limited" => (StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited"),
            "image_invalid" | "image_too_large" => (StatusCode::BAD_REQUEST, "image_invalid"),
            "outcome_unknown" => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
            "gateway_rejected" => (StatusCode::BAD_GATEWAY, "upstream_rejected"),
            _ => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
        };
        Self {
            status,
            code,
            message,
            tiktok_code,
            retry_after: None,
            rate_limit: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl From<tiktok_dm_store::Error> for ApiError {
    fn from(e: tiktok_dm_store::Error) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
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
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}
