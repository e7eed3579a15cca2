//! The API-key extractor: `Authorization: Bearer KEY` or `X-API-Key: KEY`,
//! looked up by its SHA-256.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tiktok_dm_store::{ApiKey, Store};

use super::error::{ApiError, ErrorCode};
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
        Ok(Self(found))
    }
}
