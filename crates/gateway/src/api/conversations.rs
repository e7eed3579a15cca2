//! Reading an account's DMs with the API key: `GET /v1/conversations`,
//! `GET /v1/conversations/{conversation_id}/messages` (history, newest
//! first) and `GET /v1/media/{cursor}` (a logged received image, opened).
//! Each asks TikTok with the account's pooled session; a key reads only the
//! accounts it may use, and one it may not use is answered as one that does
//! not exist. No answer carries an image's `decrypt_key`: the gateway opens
//! images itself.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiktok_dm_client::{Error as ClientError, ReceivedImage, SendRejection, Session};
use tiktok_dm_proto::ids::ConversationId;
use tiktok_dm_store::{ApiKey, EventFilter, Store};

use super::auth::Caller;
use super::error::{ApiError, ErrorCode};
use crate::accounts::{SessionError, account_session};
use crate::state::AppState;

/// History page size when `limit` is not given.
pub const DEFAULT_LIMIT: i32 = 50;
/// The largest history page.
pub const MAX_LIMIT: i32 = 100;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn no_account(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AccountNotFound,
        format!("no stored account named {name:?} for this API key"),
    )
}

/// Refuses query parameters other than `known`.
fn only(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(bad(format!(
            "unknown query parameter {unknown:?}; use {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The pooled session of `name`, if the key may use it.
async fn session_for<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
    name: &str,
) -> Result<Session, ApiError> {
    if !key.may_send_as(name) {
        return Err(no_account(name));
    }
    account_session(state, name)
        .await
        .map(|(_, session)| session)
        .map_err(|e| session_error(e, name))
}

/// The answer when the session of the account `name` (or of a request)
/// cannot be had.
pub(super) fn session_error(e: SessionError, name: &str) -> ApiError {
    match e {
        SessionError::NotFound => no_account(name),
        SessionError::Store(e) => e.into(),
        SessionError::Unsealed(e) => ApiError::internal(&e),
        SessionError::Refused(e, _) | SessionError::Connect(e) => client_error(&e),
    }
}

/// The answer for a failed read (nothing was sent: no outcome is unknown).
pub(super) fn client_error(e: &ClientError) -> ApiError {
    let code = match e {
        ClientError::MediaInvalid(_) => ErrorCode::MediaInvalid,
        ClientError::InvalidSession(_)
        | ClientError::InvalidCredentials(_)
        | ClientError::Rejected(SendRejection::InvalidSession { .. }) => ErrorCode::SessionRejected,
        ClientError::Rejected(SendRejection::ConversationNotFound { .. }) => {
            ErrorCode::ConversationNotFound
        }
        ClientError::Rejected(SendRejection::InvalidRequest { .. }) => ErrorCode::RequestRejected,
        ClientError::Rejected(SendRejection::RateLimited { .. })
        | ClientError::HttpStatus { status: 429 } => ErrorCode::UpstreamRateLimited,
        _ => ErrorCode::UpstreamUnavailable,
    };
    ApiError {
        tiktok_code: e.tiktok_code(),
        ..ApiError::new(code, e.to_string())
    }
}

/// `value` without any `image.decrypt_key` (in it, or in its
/// `last_message`).
fn without_keys(mut value: Value) -> Value {
    crate::inbound::without_image_key(&mut value);
    if let Some(last) = value.get_mut("last_message") {
        crate::inbound::without_image_key(last);
    }
    value
}

fn required<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    q.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(format!("the query parameter {name} is required")))
}

/// `GET /v1/conversations?account=NAME`.
pub async fn list<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only(&q, &["account"])?;
    let name = required(&q, "account")?;
    let session = session_for(&state, &key, name).await?;
    let conversations = session
        .conversations()
        .await
        .map_err(|e| client_error(&e))?;
    let shown: Vec<Value> = conversations
        .iter()
        .map(|c| without_keys(serde_json::to_value(c).unwrap_or_default()))
        .collect();
    Ok(Json(json!({ "conversations": shown })))
}

/// A positive 64-bit number from the query, when given.
fn positive(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(bad(format!("{name} must be a positive whole number"))),
        },
    }
}

/// `GET /v1/conversations/{conversation_id}/messages?account=NAME&before=CURSOR&limit=N`
/// (and `conversation_short_id`, which TikTok web sends with a history
/// request when it knows it).
pub async fn messages<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(conversation_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only(&q, &["account", "before", "limit", "conversation_short_id"])?;
    let name = required(&q, "account")?;
    let conversation = ConversationId::parse(&conversation_id)
        .map_err(|e| ApiError::new(ErrorCode::ConversationIdInvalid, e.to_string()))?;
    let before = positive(&q, "before")?;
    let short_id = positive(&q, "conversation_short_id")?;
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<i32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let session = session_for(&state, &key, name).await?;
    let page = session
        .history(conversation.as_str(), short_id, before, limit)
        .await
        .map_err(|e| client_error(&e))?;
    let shown: Vec<Value> = page
        .events
        .iter()
        .map(|e| without_keys(serde_json::to_value(e).unwrap_or_default()))
        .collect();
    Ok(Json(json!({
        "messages": shown,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// `GET /v1/media/{cursor}`: the image of a logged `message.received`
/// event of an account the key may use, fetched with that account's
/// session and opened.
pub async fn media<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(cursor): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no received image with cursor {cursor:?} for this API key"),
        )
    };
    let at = cursor
        .parse::<i64>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(not_found)?;
    let filter = EventFilter {
        accounts: (!key.any_account).then(|| key.accounts.clone()),
        types: Some(vec!["message.received".to_owned()]),
    };
    let found = state.store.events_after(at - 1, &filter, 1).await?;
    let event = found
        .into_iter()
        .find(|e| e.cursor == at)
        .ok_or_else(not_found)?;
    let image: ReceivedImage = serde_json::from_str::<Value>(&event.payload)
        .ok()
        .and_then(|mut v| v.get_mut("image").map(Value::take))
        .and_then(|i| serde_json::from_value(i).ok())
        .ok_or_else(not_found)?;
    let session = session_for(&state, &key, &event.account).await?;
    let bytes = session
        .fetch_image(&image)
        .await
        .map_err(|e| client_error(&e))?;
    let content_type = tiktok_dm_proto::image::probe(&bytes)
        .map_or("application/octet-stream", |p| p.format.mime());
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}
