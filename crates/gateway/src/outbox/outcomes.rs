//! `message.sent` and `message.failed` in the event log, for messages sent as
//! a stored account (the log is per account; a send with its own session has
//! none). Logged after the outcome is recorded; the request's status stays
//! the authority. A repeat (the outcome recorded again after a lost lease)
//! is dropped by its dedupe key.

use serde_json::json;
use tiktok_dm_client::Error as ClientError;
use tiktok_dm_store::{NewEvent, OutboxMessage, Store};

use crate::now_ms;
use crate::state::AppState;

fn common(m: &OutboxMessage, account: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut data = serde_json::Map::new();
    data.insert("account".into(), account.into());
    data.insert("request_id".into(), m.request_id.clone().into());
    data.insert("position".into(), m.position.into());
    data.insert(
        "client_message_id".into(),
        m.client_message_id.as_str().into(),
    );
    data.insert(
        "conversation_id".into(),
        m.target.conversation_id.as_str().into(),
    );
    data.insert(
        "conversation_short_id".into(),
        m.target.conversation_short_id.to_string().into(),
    );
    data.insert("kind".into(), m.content.kind().as_str().into());
    data
}

async fn log<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    account: &str,
    kind: &'static str,
    data: serde_json::Map<String, serde_json::Value>,
) {
    let event = NewEvent {
        account: account.to_owned(),
        event_type: kind.to_owned(),
        conversation_id: Some(m.target.conversation_id.as_str().to_owned()),
        dedupe_key: Some(format!("{kind}:{}:{}", m.request_id, m.position)),
        payload: serde_json::Value::Object(data).to_string(),
        occurred_at: now_ms(),
    };
    match state.store.append_events(vec![event], now_ms()).await {
        Ok(appended) => {
            if let Some(cursor) = appended.first().and_then(|a| a.cursor()) {
                state.event_logged(kind, cursor);
            }
        }
        Err(e) => tracing::warn!(error = %e, "outbox: the outcome event was not logged"),
    }
}

/// Logs that `m` was delivered as `server_message_id` over `transport`.
pub(super) async fn sent<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    server_message_id: &str,
    transport: &str,
) {
    let Some(account) = &m.account else {
        return;
    };
    let mut data = common(m, account);
    data.insert("server_message_id".into(), server_message_id.into());
    data.insert("transport".into(), transport.into());
    log(state, m, account, "message.sent", data).await;
}

/// Logs that `m` ended `failed` or `unknown` with `e`.
pub(super) async fn failed<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    status: &str,
    e: &ClientError,
) {
    let Some(account) = &m.account else {
        return;
    };
    let mut data = common(m, account);
    data.insert("status".into(), status.into());
    data.insert(
        "error".into(),
        json!({"code": e.failure_code().as_str(), "message": e.to_string(), "tiktok_code": e.tiktok_code()}),
    );
    log(state, m, account, "message.failed", data).await;
}
