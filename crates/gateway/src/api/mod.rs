//! The HTTP API.

mod admin;
mod auth;
mod error;
mod input;
mod messages;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use tiktok_dm_store::Store;
use tokio::sync::Notify;

pub use error::ApiError;

use crate::config::Settings;
use crate::secrets::Vault;

/// What every handler and the worker share.
pub struct AppState<S> {
    /// The store.
    pub store: S,
    /// Seals and opens TikTok sessions.
    pub vault: Arc<Vault>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Wakes the outbox worker when a request is accepted.
    pub wake: Arc<Notify>,
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            vault: Arc::clone(&self.vault),
            settings: Arc::clone(&self.settings),
            wake: Arc::clone(&self.wake),
        }
    }
}

/// `GET /readyz`: 200 when the database answers (with the outbox depth), 503 otherwise.
async fn ready<S: Store>(
    axum::extract::State(state): axum::extract::State<AppState<S>>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.store.outbox_depth().await {
        Ok(depth) => {
            axum::Json(serde_json::json!({"ready": true, "outbox_depth": depth})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"ready": false})),
            )
                .into_response()
        }
    }
}

/// Answers 408 when a request takes longer than the configured timeout.
async fn timeout<S: Store>(
    axum::extract::State(state): axum::extract::State<AppState<S>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let limit = state.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// The router. The body limit follows the image limit (base64 is 4/3 of the
/// bytes, plus room for the rest of the JSON).
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let body_limit = usize::try_from(state.settings.image_limit.saturating_mul(4) / 3 + 64 * 1024)
        .unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/messages", post(messages::post::<S>))
        .route("/v1/messages/{id}", get(messages::get::<S>))
        .route("/v1/usage", get(messages::usage::<S>))
        .route(
            "/v1/admin/keys",
            get(admin::list_keys::<S>).post(admin::create_key::<S>),
        )
        .route("/v1/admin/keys/{name}", delete(admin::revoke_key::<S>))
        .route("/v1/admin/accounts", get(admin::list_accounts::<S>))
        .route(
            "/v1/admin/accounts/{name}",
            put(admin::put_account::<S>).delete(admin::remove_account::<S>),
        )
        .route(
            "/v1/admin/accounts/{name}/check",
            post(admin::check_account::<S>),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<S>))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            timeout::<S>,
        ))
        .with_state(state)
}
