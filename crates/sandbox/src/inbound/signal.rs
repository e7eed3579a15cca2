//! The pushes of `/_sandbox/inbound` that store nothing: typing (cmd 510)
//! and read (cmd 501) go to the other participant's sockets, in the
//! NewMessageNotify shape `tiktok_dm_proto::events` reads (inferred,
//! PROTOCOL.md 10.2); a reaction (cmd 705, `PropertyUpdateNotify` with ext
//! `s:property_modify`) goes to both participants, like a message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::schema::{
    ExtendedEntry, MessageBody, NewMessageNotify, PropertyUpdateNotify, ResponseBody,
};

use super::{Refusal, Sender};
use crate::push::{deliver, notify_push};
use crate::state::{Shared, now_ms};

/// `message_type` of a conversation command such as a read receipt (the web
/// SDK's COMMAND, PROTOCOL.md 1.10).
const MESSAGE_TYPE_COMMAND: i32 = 50001;

/// `"reaction": {"server_message_id": "...", "emoji": "❤️", "remove": false}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReactionRequest {
    server_message_id: MessageId,
    emoji: String,
    /// Take the reaction away (`Op` 1) instead of adding it.
    #[serde(default)]
    remove: bool,
}

/// A server message id as a JSON string (as the sandbox writes them) or number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MessageId {
    Text(String),
    Number(i64),
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(serde_json::json!({}))).into_response()
}

/// A NewMessageNotify from the sender in its conversation, carrying `message`.
fn notify(sender: &Sender<'_>, mut message: MessageBody) -> NewMessageNotify {
    let conversation = sender.conversation;
    message.conversation_id = Some(conversation.conversation_id.as_str().into());
    message.conversation_type = Some(1);
    message.conversation_short_id = Some(conversation.conversation_short_id.get());
    message.sender = Some(sender.account.uid.get());
    message.create_time = Some(now_ms() as i64);
    NewMessageNotify {
        conversation_id: Some(conversation.conversation_id.as_str().into()),
        conversation_type: Some(1),
        message: Some(message),
        ..NewMessageNotify::default()
    }
}

/// cmd 510 to the other participant.
pub(super) fn typing(shared: &Shared, sender: &Sender<'_>) -> Result<Response, Refusal> {
    let body = ResponseBody {
        typing_notify: vec![notify(sender, MessageBody::default())],
        ..ResponseBody::default()
    };
    deliver(
        shared,
        &notify_push(cmd::TYPING_NOTIFY, body, vec![sender.peer]),
    );
    Ok(accepted())
}

/// cmd 501 to the other participant: read up to the conversation's newest
/// message (409 when it has none).
pub(super) fn read(shared: &Shared, sender: &Sender<'_>) -> Result<Response, Refusal> {
    let id = sender.conversation.conversation_id.as_str();
    let newest = shared
        .lock()
        .messages
        .iter()
        .rev()
        .find(|m| m.received.conversation_id == id)
        .and_then(|m| m.body.index_in_conversation);
    let Some(index) = newest else {
        return Err(Refusal {
            status: StatusCode::CONFLICT,
            message: format!("conversation {id} has no message to read yet"),
        });
    };
    let content = serde_json::json!({"command_type": 1, "read_index": index});
    let message = MessageBody {
        index_in_conversation: Some(index),
        message_type: Some(MESSAGE_TYPE_COMMAND),
        content: Some(content.to_string().into()),
        ..MessageBody::default()
    };
    let body = ResponseBody {
        read_notify: vec![notify(sender, message)],
        ..ResponseBody::default()
    };
    deliver(
        shared,
        &notify_push(cmd::READ_NOTIFY, body, vec![sender.peer]),
    );
    Ok(accepted())
}

/// cmd 705 to both participants: the sender adds (or removes) `emoji` on a
/// message of the conversation (404 when there is no such message).
pub(super) fn reaction(
    shared: &Shared,
    sender: &Sender<'_>,
    reaction: &ReactionRequest,
) -> Result<Response, Refusal> {
    let target = match &reaction.server_message_id {
        MessageId::Number(n) => Some(*n),
        MessageId::Text(s) => s.trim().parse().ok(),
    };
    let Some(target) = target else {
        return Err(Refusal::bad_request(
            "\"reaction.server_message_id\" is not a number",
        ));
    };
    if reaction.emoji.trim().is_empty() {
        return Err(Refusal::bad_request("\"reaction.emoji\" is empty"));
    }
    let id = sender.conversation.conversation_id.as_str();
    let found = shared
        .lock()
        .messages
        .iter()
        .any(|m| m.received.conversation_id == id && m.received.server_message_id == target);
    if !found {
        return Err(Refusal::not_found(format!(
            "no message {target} in conversation {id}"
        )));
    }
    let modify = serde_json::json!({
        "UserId": sender.account.uid.get(),
        "ServerMessageId": target,
        "Modifys": [{"Op": i32::from(reaction.remove), "Key": format!("e:{}", reaction.emoji)}],
    });
    let notify = PropertyUpdateNotify {
        conversation_id: Some(id.into()),
        conversation_type: Some(1),
        ext: vec![
            ExtendedEntry::new("s:property_modify", modify.to_string()),
            ExtendedEntry::new("s:server_message_id", target.to_string()),
        ],
        ..PropertyUpdateNotify::default()
    };
    let body = ResponseBody {
        property_update_notify: Some(notify),
        ..ResponseBody::default()
    };
    let recipients = vec![sender.account.uid, sender.peer];
    deliver(
        shared,
        &notify_push(cmd::PROPERTY_UPDATE_NOTIFY, body, recipients),
    );
    Ok(accepted())
}
