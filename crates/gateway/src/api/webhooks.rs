//! `/v1/webhooks`: an API key's webhooks. Created with a URL and event types
//! (the signing secret is in the creation's answer and nowhere else), listed,
//! deleted, and replayed from a cursor. A key sees and changes only its own;
//! another key's webhook answers as one that does not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tiktok_dm_store::{Store, Webhook};

use super::auth::Caller;
use super::error::{ApiError, ErrorCode};
use crate::now_ms;
use crate::state::AppState;
use crate::webhooks::{self, WebhookError};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let code = match e {
            WebhookError::UrlInvalid(_) => ErrorCode::WebhookUrlInvalid,
            WebhookError::UrlNotAllowed(_) => ErrorCode::WebhookUrlNotAllowed,
            WebhookError::EventsInvalid(_) => ErrorCode::WebhookEventsInvalid,
            WebhookError::LimitReached => ErrorCode::WebhookLimitReached,
            WebhookError::Seal => return ApiError::internal(&e),
            WebhookError::Store(s) => return s.into(),
        };
        ApiError::new(code, e.to_string())
    }
}

/// The body `POST /v1/webhooks` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
}

/// The body `POST /v1/webhooks/{id}/replay` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    since: Option<Value>,
}

fn json_body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid: {e}"),
        )
    })
}

/// A webhook as answered: never its secret.
fn shown(w: &Webhook) -> Value {
    json!({"id": w.id, "url": w.url, "events": w.events, "created_at": w.created_at})
}

/// `POST /v1/webhooks`: 201 with the webhook and its secret (only here).
pub(crate) async fn create<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: CreateBody = json_body(&raw)?;
    let url = body
        .url
        .ok_or_else(|| ApiError::new(ErrorCode::WebhookUrlInvalid, "url is missing"))?;
    let events = body.events.ok_or_else(|| {
        ApiError::new(
            ErrorCode::WebhookEventsInvalid,
            "events is missing; name the event types to receive",
        )
    })?;
    let created = webhooks::create(
        &state.store,
        &state.vault,
        key.id,
        &url,
        &events,
        state.settings.allow_private_webhooks,
        now_ms(),
    )
    .await?;
    tracing::info!(key = %key.name, webhook = %created.webhook.id, "webhook created");
    let mut answer = shown(&created.webhook);
    answer["success"] = json!(true);
    answer["secret"] = json!(created.secret.expose_secret());
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/webhooks`: the key's webhooks, oldest first.
pub(crate) async fn list<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
) -> Result<Response, ApiError> {
    let hooks = state.store.webhooks_for_key(key.id).await?;
    let hooks: Vec<Value> = hooks.iter().map(shown).collect();
    Ok(Json(json!({"success": true, "webhooks": hooks})).into_response())
}

/// An id that can name a webhook (`wh_` and hex digits); others are
/// answered as not found without asking the store.
fn plausible(id: &str) -> bool {
    id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::WebhookNotFound,
        format!("this API key has no webhook {}", webhooks::ssrf::shown(id)),
    )
}

/// `DELETE /v1/webhooks/{id}`: 204.
pub(crate) async fn delete<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !plausible(&id) || !state.store.delete_webhook(key.id, &id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(key = %key.name, webhook = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A cursor: a whole number from 0, as a JSON number or a decimal string.
fn cursor(since: Option<&Value>) -> Result<i64, ApiError> {
    let invalid = |why: &str| ApiError::new(ErrorCode::CursorInvalid, why.to_owned());
    let parsed = match since {
        None | Some(Value::Null) => {
            return Err(invalid(
                "since is missing: the cursor after which events are sent again (0 for every event kept)",
            ));
        }
        Some(Value::Number(n)) => n.as_i64(),
        // At most 18 digits, as the document's pattern says.
        Some(Value::String(s))
            if (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i64>().ok()
        }
        Some(_) => None,
    };
    parsed.filter(|n| *n >= 0).ok_or_else(|| {
        invalid("since must be a whole number from 0 to 2^63-1, as a number or a string")
    })
}

/// `POST /v1/webhooks/{id}/replay`: 202 with how many deliveries were queued.
pub(crate) async fn replay<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: ReplayBody = json_body(&raw)?;
    let since = cursor(body.since.as_ref())?;
    if !plausible(&id) {
        return Err(not_found(&id));
    }
    match state.store.webhook(&id).await? {
        Some(w) if w.key_id == key.id => {}
        _ => return Err(not_found(&id)),
    }
    let queued = state
        .store
        .replay_webhook(key.id, &id, since, now_ms())
        .await?;
    state.events_appended.notify_one();
    tracing::info!(key = %key.name, webhook = %id, since, queued, "webhook replayed");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"success": true, "queued": queued})),
    )
        .into_response())
}
