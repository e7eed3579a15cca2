//! The admin API under `/v1/admin`, guarded by the admin key
//! (`Authorization: Bearer ADMIN_KEY` or `X-Admin-Key`). Off unless an admin
//! key is configured. It does what `tiktok-dm keys` and `tiktok-dm accounts` do.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tiktok_dm_store::Store;

use super::auth::presented;
use super::error::{ApiError, ErrorCode};
use crate::admin::{self, KeySpec};
use crate::now_ms;
use crate::secrets::verify_key;
use crate::state::AppState;

/// A request that presented the admin key.
pub struct AdminCaller;

impl<S: Store> FromRequestParts<AppState<S>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        let Some(expected) = state.settings.admin_key_hash else {
            return Err(ApiError::new(
                ErrorCode::AdminDisabled,
                "the admin API is off: configure an admin key (TIKTOK_DM_ADMIN_KEY) to use it",
            ));
        };
        let Some(presented) = presented(parts, "x-admin-key") else {
            return Err(ApiError::new(
                ErrorCode::AdminKeyMissing,
                "the admin API needs the admin key: Authorization: Bearer <admin key>",
            ));
        };
        if verify_key(&presented, &expected) {
            Ok(Self)
        } else {
            Err(ApiError::new(
                ErrorCode::AdminKeyInvalid,
                "the admin key is not valid",
            ))
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Invalid(m) => ApiError::new(ErrorCode::InvalidRequest, m),
            crate::Error::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            crate::Error::Store(tiktok_dm_store::Error::Duplicate(m)) => {
                ApiError::new(ErrorCode::AlreadyExists, format!("{m} already exists"))
            }
            crate::Error::Store(
                e @ (tiktok_dm_store::Error::Invalid(_) | tiktok_dm_store::Error::Unavailable(_)),
            ) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid: {e}"),
        )
    })
}

/// `POST /v1/admin/keys`: the key is in this answer and nowhere else, ever.
pub(crate) async fn create_key<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let spec: KeySpec = json_body(&raw)?;
    let (issued, key) = admin::create_key(&state.store, spec, now_ms()).await?;
    tracing::info!(name = %key.name, prefix = %key.prefix, "admin: API key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "key": issued.reveal(), "api_key": key})),
    )
        .into_response())
}

/// `GET /v1/admin/keys`.
pub(crate) async fn list_keys<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
) -> Result<Response, ApiError> {
    let keys = state.store.list_api_keys().await?;
    Ok(Json(json!({"success": true, "api_keys": keys})).into_response())
}

/// `DELETE /v1/admin/keys/{name}`.
pub(crate) async fn revoke_key<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if state.store.revoke_api_key(&name, now_ms()).await? {
        tracing::info!(name = %name, "admin: API key revoked");
        Ok(Json(json!({"success": true, "revoked": name})).into_response())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no active API key named {name:?}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    session: String,
    /// Left out or null: a new account listens, a replaced one keeps its
    /// switch.
    #[serde(default)]
    listen: Option<bool>,
}

/// `PUT /v1/admin/accounts/{name}`: stores (or replaces) the session, sealed,
/// and the listen switch when given.
pub(crate) async fn put_account<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: AccountBody = json_body(&raw)?;
    let listen = admin::put_account(
        &state.store,
        &state.vault,
        &name,
        &body.session,
        body.listen,
        now_ms(),
    )
    .await?;
    tracing::info!(account = %name, listen, "admin: account stored");
    Ok(Json(json!({"success": true, "account": name, "listen": listen})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    listen: bool,
}

/// `PATCH /v1/admin/accounts/{name}`: switches listening on or off, leaving
/// the session as it is.
pub(crate) async fn update_account<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let change: AccountChange = json_body(&raw)?;
    admin::set_listen(&state.store, &name, change.listen).await?;
    tracing::info!(account = %name, listen = change.listen, "admin: account's listening switched");
    Ok(Json(json!({"success": true, "account": name, "listen": change.listen})).into_response())
}

/// `GET /v1/admin/accounts`.
pub(crate) async fn list_accounts<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
) -> Result<Response, ApiError> {
    let accounts = state.store.list_accounts().await?;
    Ok(Json(json!({"success": true, "accounts": accounts})).into_response())
}

/// `GET /v1/admin/gateways`: as this gateway's last heartbeat read them
/// (at most a third of `owner_lease_secs` old).
pub(crate) async fn list_gateways<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
) -> Result<Response, ApiError> {
    let gateways = state.ownership.gateways();
    let this = state.ownership.id();
    Ok(Json(json!({"success": true, "gateway": this, "gateways": gateways})).into_response())
}

/// `DELETE /v1/admin/accounts/{name}`.
pub(crate) async fn remove_account<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if state.store.remove_account(&name).await? {
        tracing::info!(account = %name, "admin: account removed");
        Ok(Json(json!({"success": true, "removed": name})).into_response())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no account named {name:?}"),
        ))
    }
}

/// `POST /v1/admin/accounts/{name}/check`: does TikTok accept the session now?
/// 200 with `ok` either way; the answer is about the session, not the request.
pub(crate) async fn check_account<S: Store>(
    State(state): State<AppState<S>>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let check = admin::check_account(&state.store, &state.vault, &state.settings, &name).await?;
    Ok(Json(json!({"success": true, "check": check})).into_response())
}
