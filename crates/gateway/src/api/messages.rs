//! `POST /v1/messages`, `GET /v1/messages/{id}`, `GET /v1/usage`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tiktok_dm_client::proto::access_key::hex;

use crate::now_ms;
use tiktok_dm_client::image::{Image, ImageProblem};
use tiktok_dm_client::{Credentials, Session, Target};
use tiktok_dm_store::{
    ApiKey, Enqueued, Kind, NewMessage, NewRequest, RequestStatus, State as MessageState, Store,
};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::quota;

/// The JSON body of a send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    conversation_id: Option<String>,
    /// A string or a number (n8n sends either).
    conversation_short_id: Option<Value>,
    text: Option<String>,
    image: Option<ImageBody>,
    account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBody {
    base64: Option<String>,
    data_uri: Option<String>,
}

fn image_error(p: ImageProblem) -> ApiError {
    match p {
        ImageProblem::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
            p.to_string(),
        ),
        other => ApiError::bad_request("image_invalid", other.to_string()),
    }
}

/// The validated parts of a send.
struct Validated {
    target: Target,
    text: Option<String>,
    image: Option<Image>,
}

fn validate(body: &SendBody, image_limit: u64) -> Result<Validated, ApiError> {
    let id = body.conversation_id.as_deref().unwrap_or_default();
    if id.trim().is_empty() {
        return Err(ApiError::bad_request(
            "conversation_id_missing",
            "conversation_id is required",
        ));
    }
    let short = match &body.conversation_short_id {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(
                "conversation_short_id_missing",
                "conversation_short_id is required",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "conversation_short_id_invalid",
                "conversation_short_id must be a number or a decimal string",
            ));
        }
    };
    let target = Target::parse(id, &short).map_err(|e| {
        let code = if e.to_string().contains("short id") {
            "conversation_short_id_invalid"
        } else {
            "conversation_id_invalid"
        };
        ApiError::bad_request(code, e.to_string())
    })?;
    let image = match &body.image {
        Some(ImageBody {
            base64: Some(b),
            data_uri: None,
        })
        | Some(ImageBody {
            base64: None,
            data_uri: Some(b),
        }) => Some(Image::from_text(b, image_limit).map_err(image_error)?),
        Some(_) => {
            return Err(ApiError::bad_request(
                "image_invalid",
                "image must have exactly one of base64 and data_uri",
            ));
        }
        None => None,
    };
    let text = body.text.clone().filter(|t| !t.trim().is_empty());
    if let Some(t) = &text {
        tiktok_dm_client::proto::content::MessageText::parse(t)
            .map_err(|e| ApiError::bad_request("text_too_long", e.to_string()))?;
    }
    if text.is_none() && image.is_none() {
        return Err(ApiError::bad_request(
            "message_empty",
            "either text or image must be provided",
        ));
    }
    Ok(Validated {
        target,
        text,
        image,
    })
}

/// Quota as the original node reported it: per window, limit, used, remaining, resets_at.
async fn quota_json<S: Store>(store: &S, key: &ApiKey, now: i64) -> Result<Value, ApiError> {
    let mut out = serde_json::Map::new();
    for w in quota::windows(key, now) {
        let used = store.used_since(key.id, w.start).await?;
        out.insert(
            w.name.to_owned(),
            json!({"limit": w.limit, "used": used, "remaining": w.limit.saturating_sub(used), "resets_at": w.resets_at / 1000}),
        );
    }
    Ok(if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    })
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds) for the window
/// with the fewest messages left; nothing when the key has no limit.
fn add_rate_limit_headers(response: &mut Response, quota: &Value) {
    let tightest = quota
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .min_by_key(|w| w["remaining"].as_u64().unwrap_or(u64::MAX));
    if let Some(w) = tightest {
        for (name, field) in [
            ("x-ratelimit-limit", "limit"),
            ("x-ratelimit-remaining", "remaining"),
            ("x-ratelimit-reset", "resets_at"),
        ] {
            if let Some(v) = w[field].as_u64() {
                response
                    .headers_mut()
                    .insert(name, axum::http::HeaderValue::from(v));
            }
        }
    }
}

fn messages_json(status: &RequestStatus) -> Vec<Value> {
    status
        .messages
        .iter()
        .map(|m| {
            json!({
                "kind": m.kind,
                "client_message_id": m.client_message_id,
                "server_message_id": m.server_message_id,
                "state": m.state,
                "transport": m.transport,
            })
        })
        .collect()
}

/// The answer for a request's current status, in the original node's shape.
async fn status_response<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
    status: &RequestStatus,
    image_bytes: u64,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let quota = quota_json(&state.store, key, now).await?;
    let all_final = status.messages.iter().all(|m| m.state.is_final());
    let failure = status
        .messages
        .iter()
        .find(|m| matches!(m.state, MessageState::Failed | MessageState::Unknown));
    let sent = status
        .messages
        .iter()
        .filter(|m| m.state == MessageState::Sent)
        .count();
    let usage = json!({"messages": status.messages.len(), "image_bytes": image_bytes, "key_used_today": state.store.used_since(key.id, now - now.rem_euclid(86_400_000)).await?});
    let mut body = json!({
        "id": status.id,
        "success": failure.is_none(),
        "messages": messages_json(status),
        "usage": usage,
        "quota": quota,
    });
    let code = match (failure, all_final) {
        (Some(m), _) => {
            let error = m.error.clone().unwrap_or(Value::Null);
            let message = error["message"]
                .as_str()
                .unwrap_or("the message was not delivered")
                .to_owned();
            let api = ApiError::from_delivery(
                error["code"].as_str().unwrap_or(""),
                message.clone(),
                error["tiktok_code"].as_i64(),
            );
            let prefix = if sent > 0 {
                "the image was sent but the text was not: "
            } else {
                ""
            };
            body["message"] = json!(format!("{prefix}{message}"));
            body["error"] =
                json!({"code": api.code, "message": message, "tiktok_code": api.tiktok_code});
            api.status
        }
        (None, true) => {
            body["message"] = json!(if sent == 1 {
                "sent 1 message".to_owned()
            } else {
                format!("sent {sent} messages")
            });
            StatusCode::OK
        }
        (None, false) => {
            body["message"] = json!("accepted; delivery in progress");
            body["status_url"] = json!(format!("/v1/messages/{}", status.id));
            StatusCode::ACCEPTED
        }
    };
    let mut response = (code, Json(body)).into_response();
    add_rate_limit_headers(&mut response, &quota);
    Ok(response)
}

/// `POST /v1/messages` (JSON).
pub(crate) async fn post<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let body: SendBody = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not a valid send request: {e}"),
        )
    })?;
    let valid = validate(&body, state.settings.image_limit)?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let request_id = format!("req_{}", hex(&rand::random::<[u8; 12]>()));
    // Whose session: the request's own, or a stored account.
    let (account, session_sealed) = match header("x-tiktok-session") {
        Some(session) => {
            Credentials::parse(session)
                .map_err(|e| ApiError::bad_request("session_invalid_format", e.to_string()))?;
            let sealed = state
                .vault
                .seal(session.as_bytes(), &format!("request:{request_id}"))
                .map_err(|e| ApiError::internal(&e))?;
            (None, Some(sealed))
        }
        None => match body.account.clone().or_else(|| key.account.clone()) {
            Some(name) if state.store.account(&name).await?.is_some() => (Some(name), None),
            Some(name) => {
                return Err(ApiError::bad_request(
                    "account_not_found",
                    format!("no stored account named {name:?}"),
                ));
            }
            None => {
                return Err(ApiError::bad_request(
                    "session_missing",
                    "send the TikTok session in X-TikTok-Session, or name a stored account",
                ));
            }
        },
    };
    let image_bytes = valid.image.as_ref().map_or(0, Image::len);
    let image_md5 = valid.image.as_ref().map(Image::md5_hex);
    let request_hash = hex(&Sha256::digest(
        json!([
            valid.target.conversation_id.as_str(),
            valid.target.conversation_short_id.get(),
            valid.text,
            image_md5,
            account
        ])
        .to_string(),
    ));
    let mut messages = Vec::new();
    if let Some(image) = valid.image {
        messages.push(NewMessage {
            kind: Kind::Image,
            client_message_id: Session::new_client_message_id().to_string(),
            text: None,
            image: Some(image.into_bytes()),
        });
    }
    if let Some(text) = valid.text {
        messages.push(NewMessage {
            kind: Kind::Text,
            client_message_id: Session::new_client_message_id().to_string(),
            text: Some(text),
            image: None,
        });
    }
    let now = now_ms();
    let new = NewRequest {
        id: request_id,
        api_key_id: key.id,
        idempotency_key: header("idempotency-key").map(str::to_owned),
        request_hash,
        account,
        session_sealed,
        conversation_id: valid.target.conversation_id.to_string(),
        conversation_short_id: valid.target.conversation_short_id.get(),
        messages,
    };
    let request_id = match state
        .store
        .enqueue(new, &quota::windows(&key, now), now)
        .await?
    {
        Enqueued::Accepted { request_id } | Enqueued::Replay { request_id } => request_id,
        Enqueued::IdempotencyConflict => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used for a different request",
            ));
        }
        Enqueued::QuotaExceeded {
            window,
            limit,
            used,
            resets_at,
        } => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!(
                    "the {window} quota of {limit} messages is used up ({used} counted); it resets at {}",
                    resets_at / 1000
                ),
            );
            e.retry_after = Some(u64::try_from((resets_at - now).max(1000) / 1000).unwrap_or(1));
            e.rate_limit = Some((limit, 0, u64::try_from(resets_at / 1000).unwrap_or(0)));
            return Err(e);
        }
    };
    state.wake.notify_one();
    let prefer_async = header("prefer").is_some_and(|p| p.contains("respond-async"));
    let deadline = tokio::time::Instant::now()
        + if prefer_async {
            Duration::ZERO
        } else {
            state.settings.wait_for_delivery
        };
    loop {
        let status = state
            .store
            .request_status(&request_id, key.id)
            .await?
            .ok_or_else(|| ApiError::internal(&"accepted request vanished"))?;
        if status.messages.iter().all(|m| m.state.is_final())
            || tokio::time::Instant::now() >= deadline
        {
            return status_response(&state, &key, &status, image_bytes).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /v1/messages/{id}`.
pub(crate) async fn get<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.request_status(&id, key.id).await? {
        Some(status) => status_response(&state, &key, &status, 0).await,
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no request {id:?} for this API key"),
        )),
    }
}

/// `GET /v1/usage`.
pub(crate) async fn usage<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let today = state
        .store
        .used_since(key.id, now - now.rem_euclid(86_400_000))
        .await?;
    let quota = quota_json(&state.store, &key, now).await?;
    let body =
        json!({"success": true, "usage": {"key": key.name, "used_today": today}, "quota": quota});
    let mut response = Json(body).into_response();
    add_rate_limit_headers(&mut response, &quota);
    Ok(response)
}
