//! `message.sent` and `message.failed` in the event log, for messages sent as
//! a stored account (the log is per account; a send with its own session has
//! none). Each is appended in the transaction that records its outcome
//! (`Store::mark_sent`, `Store::finish`), so an outcome is
//! never stored without its event. A repeat is dropped by its dedupe key.

use serde_json::{Map, Value, json};
use tiktok_dm_client::Error as ClientError;
use tiktok_dm_store::{NewEvent, OutboxMessage};

use crate::now_ms;

/// The event types of outcomes.
pub(super) const SENT: &str = "message.sent";
pub(super) const FAILED: &str = "message.failed";

fn common(m: &OutboxMessage, account: &str) -> Map<String, Value> {
    let mut data = Map::new();
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

/// The event of `kind` for `m` with `data`.
fn event(m: &OutboxMessage, account: &str, kind: &str, data: Map<String, Value>) -> NewEvent {
    NewEvent {
        account: account.to_owned(),
        event_type: kind.to_owned(),
        conversation_id: Some(m.target.conversation_id.as_str().to_owned()),
        dedupe_key: Some(format!("{kind}:{}:{}", m.request_id, m.position)),
        payload: Value::Object(data).to_string(),
        occurred_at: now_ms(),
    }
}

/// The `message.sent` event of `m`, delivered as `server_message_id` over
/// `transport`; `None` for a send with its own session.
pub(super) fn sent(
    m: &OutboxMessage,
    server_message_id: &str,
    transport: &str,
) -> Option<NewEvent> {
    let account = m.account.as_deref()?;
    let mut data = common(m, account);
    data.insert("server_message_id".into(), server_message_id.into());
    data.insert("transport".into(), transport.into());
    Some(event(m, account, SENT, data))
}

/// The `message.failed` event of `m`, ended `failed` or `unknown` with `e`;
/// `None` for a send with its own session.
pub(super) fn failed(m: &OutboxMessage, status: &str, e: &ClientError) -> Option<NewEvent> {
    let account = m.account.as_deref()?;
    let mut data = common(m, account);
    data.insert("status".into(), status.into());
    data.insert(
        "error".into(),
        json!({"code": e.failure_code().as_str(), "message": e.to_string(), "tiktok_code": e.tiktok_code()}),
    );
    Some(event(m, account, FAILED, data))
}
