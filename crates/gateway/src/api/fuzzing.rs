//! A send's body through the gateway's own reading and validation, with no
//! server, key or database: the entry of the `gateway_input` fuzz target
//! (fuzz/) and of the test that replays its corpus on stable Rust. It calls the
//! functions `POST /v1/messages` calls, in the same order; it is not part of the
//! API and may change with them.
#![doc(hidden)]

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest as _, Multipart, Request};
use axum::http::{HeaderValue, header};

use super::error::{ApiError, ErrorCode};
use super::input::SendInput;

/// The image limit [`run_case`] uses: small, so that fuzzed inputs of a few
/// KiB reach the size checks too.
pub const CASE_IMAGE_LIMIT: u64 = 4096;

/// Reads `body` as `POST /v1/messages` does, as a multipart form or as JSON by
/// its `content_type`, and validates it against `image_limit` (the image is
/// decoded and probed). `Ok` when the handler would go on to check the key's
/// account and quota; the body limit and the memory budget are the router's
/// and are not applied here.
///
/// # Errors
/// The [`ApiError`] the handler answers with for this body. A content type that
/// is not a header value, which no HTTP client can send, is `invalid_body`.
pub async fn send_body(
    content_type: Option<&[u8]>,
    body: &[u8],
    image_limit: u64,
) -> Result<(), ApiError> {
    let mut request = Request::new(Body::from(body.to_vec()));
    if let Some(c) = content_type {
        let value = HeaderValue::from_bytes(c).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidBody,
                "the Content-Type is not a header value",
            )
        })?;
        request.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    // The choice `SendBody::from_request` makes, on the header as it reads it.
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_form = super::input::is_form(content_type.as_deref());
    let input = if is_form {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidForm, e.body_text()))?;
        SendInput::from_multipart(form, image_limit).await?
    } else {
        let raw = Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.body_text()))?;
        SendInput::from_json(&raw, content_type.as_deref())?
    };
    input.validate(image_limit).map(drop)
}

/// Runs one fuzz case: its first line (up to the first `\n`, which is not kept)
/// is the Content-Type, an empty line meaning none, and the rest is the body;
/// a case with no `\n` is a body sent without a Content-Type. The image limit
/// is [`CASE_IMAGE_LIMIT`].
///
/// # Errors
/// As [`send_body`].
pub async fn run_case(case: &[u8]) -> Result<(), ApiError> {
    let (content_type, body) = match case.iter().position(|&b| b == b'\n') {
        Some(0) => (None, &case[1..]),
        Some(end) => (Some(&case[..end]), &case[end + 1..]),
        None => (None, case),
    };
    send_body(content_type, body, CASE_IMAGE_LIMIT).await
}
