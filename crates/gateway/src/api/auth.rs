//! The API-key extractor: `Authorization: Bearer KEY` or `X-API-Key: KEY`,
//! looked up by its SHA-256, and counted among its key's requests in progress
//! (at most `max_requests_per_key`, else 429).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tiktok_dm_store::{ApiKey, Store};

use super::error::{ApiError, ErrorCode};
use crate::limits::KeySlot;
use crate::secrets::{KEY_PREFIX, hash_key};
use crate::state::AppState;

/// The authenticated key of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

/// The key a request presents: `Authorization: Bearer KEY`, else the header
/// `fallback` (`X-API-Key` for API keys, `X-Admin-Key` for the admin key).
pub(super) fn presented(parts: &Parts, fallback: &str) -> Option<String> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header(fallback))
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

impl<S: Store> FromRequestParts<AppState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        let Some(key) = presented(parts, "x-api-key") else {
            return Err(ApiError::new(
                ErrorCode::ApiKeyMissing,
                "an API key is required: send Authorization: Bearer <key> or X-API-Key",
            ));
        };
        let invalid = || ApiError::new(ErrorCode::ApiKeyInvalid, "the API key is not valid");
        if !key.starts_with(KEY_PREFIX) {
            return Err(invalid());
        }
        // Keys are found by their SHA-256: the comparison the database makes is
        // on a digest an attacker cannot steer byte by byte, so its timing leaks
        // nothing about any stored key.
        let found = state
            .store
            .api_key_by_hash(&hash_key(&key))
            .await?
            .ok_or_else(invalid)?;
        if found.revoked_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::ApiKeyRevoked,
                "the API key has been revoked",
            ));
        }
        // Counted from here until the answer is made (the connection holds
        // the slot), and refused before the body is read.
        if let Some(slot) = parts.extensions.get::<KeySlot>() {
            let requests = &state.key_requests;
            let permit = requests
                .begin(found.id)
                .ok_or_else(|| too_many_in_progress(requests.limit()))?;
            slot.hold(permit);
        }
        Ok(Self(found))
    }
}

/// The 429 for a key with `limit` requests in progress already.
fn too_many_in_progress(limit: usize) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            ErrorCode::TooManyConcurrentRequests,
            format!(
                "this API key already has {limit} requests in progress (max_requests_per_key); nothing was read or kept; try again when one is answered"
            ),
        )
    }
}
