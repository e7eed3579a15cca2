//! cmd 100 SEND_MESSAGE: strict validation of text (7) and `private_image`
//! (1802) sends, de-duplication by client message id, the message-request and
//! rate-limit refusals, and the stored `MessageBody` the echo push and history
//! give out.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::content::{
    MAX_TEXT_UTF16_UNITS, MESSAGE_TYPE_PRIVATE_IMAGE, MESSAGE_TYPE_TEXT, SCENE_PRIVATE_IMAGE,
    utf16_len,
};
use tiktok_dm_proto::ids::{ClientMessageId, Uid};
use tiktok_dm_proto::schema::{
    ResponseBody, SendMessageRequestBody, SendMessageResponseBody, map_get,
};

use super::body::{MediaRef, Placed, media_info, message_body};
use super::image::{CheckedImage, check_private_image};
use super::{Action, Envelope};
use crate::faults::Fault;
use crate::push::{Push, new_message_push};
use crate::seed::Conversation;
use crate::state::{ReceivedMessage, StoredMessage, Transport, now_ms};

/// What an accepted send carries.
enum Content {
    /// A text message's content JSON.
    Text(serde_json::Value),
    /// A private image, opened with its key.
    Image(CheckedImage),
}

/// A send that passed validation.
struct Checked<'s> {
    conversation: &'s Conversation,
    client_id: ClientMessageId,
    content: Content,
}

/// Checks a send body.
fn validate_send<'s>(
    env: &Envelope<'s>,
    send: &SendMessageRequestBody,
) -> Result<Checked<'s>, Action> {
    let id = send.conversation_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err(env.invalid("conversation_id is missing"));
    }
    let Some(conversation) = env.shared.conversation(id) else {
        return Err(env.not_found());
    };
    if send.conversation_short_id != Some(conversation.conversation_short_id.get()) {
        return Err(env.invalid("conversation_short_id does not match conversation_id"));
    }
    if send.conversation_type != Some(1) {
        return Err(env.invalid("conversation_type must be 1 for a one-to-one conversation"));
    }
    let client_id = send.client_message_id.as_deref().unwrap_or_default();
    let client_id = ClientMessageId::parse(client_id).map_err(|e| env.invalid(&e.to_string()))?;
    if map_get(&send.ext, "s:client_message_id") != Some(client_id.as_str()) {
        return Err(env.invalid("ext s:client_message_id must equal client_message_id"));
    }
    if send.ticket.as_deref().is_none_or(str::is_empty) {
        return Err(env.invalid("ticket is missing"));
    }
    let content = match send.message_type {
        Some(MESSAGE_TYPE_TEXT) => Content::Text(check_text(env, send)?),
        Some(MESSAGE_TYPE_PRIVATE_IMAGE) => {
            let image = check_private_image(env.shared, env.account.uid, send);
            Content::Image(image.map_err(|reason| env.invalid(&reason))?)
        }
        other => {
            return Err(env.invalid(&format!(
                "message_type {other:?} is not supported by the sandbox (7 text, 1802 private_image)"
            )));
        }
    };
    Ok(Checked {
        conversation,
        client_id,
        content,
    })
}

/// A text message's content: a JSON object with an `aweType` and a text that
/// is not blank and within the limit.
fn check_text(
    env: &Envelope<'_>,
    send: &SendMessageRequestBody,
) -> Result<serde_json::Value, Action> {
    let content = send.content.as_deref().unwrap_or_default();
    let parsed: serde_json::Value = match serde_json::from_str(content) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return Err(env.invalid("content is not a JSON object")),
    };
    let text = parsed.get("text").and_then(serde_json::Value::as_str);
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Err(env.invalid("text content has no text"));
    };
    if parsed
        .get("aweType")
        .and_then(serde_json::Value::as_i64)
        .is_none()
    {
        return Err(env.invalid("text content has no aweType"));
    }
    if utf16_len(text) > MAX_TEXT_UTF16_UNITS {
        return Err(env.invalid("text is longer than 6000 characters"));
    }
    Ok(parsed)
}

fn business_rejection(env: &Envelope<'_>, client_id: &str, code: i64) -> Action {
    let (tips, scene) = if code == 7180 {
        (TIPS_7180, "send_too_fast")
    } else {
        (TIPS_7193, "message_request_limit")
    };
    let check = serde_json::json!({
        "status_code": code,
        "tips": "",
        "status_msg": {"msg_type": 1, "msg_content": {"tips": tips}},
        "decision_type": "",
        "raw_check_code": code,
        "event_tracking": {"scene": scene},
    });
    let body = SendMessageResponseBody {
        server_message_id: Some(env.shared.next_server_message_id()),
        status: Some(3),
        client_message_id: Some(client_id.into()),
        check_code: Some(2),
        check_message: Some(check.to_string().into()),
        inbox_page_category: Some(2),
        ..SendMessageResponseBody::default()
    };
    env.ok(ResponseBody {
        send_message_body: Some(body),
        ..ResponseBody::default()
    })
}

const TIPS_7193: &str =
    "You can only send up to 1 message before this user accepts your message request.";
const TIPS_7180: &str = "You're sending messages too fast. Take a break and try again later.";

fn send_reply(env: &Envelope<'_>, body: SendMessageResponseBody) -> Action {
    env.ok(ResponseBody {
        send_message_body: Some(body),
        ..ResponseBody::default()
    })
}

pub(super) fn handle_send(
    env: &Envelope<'_>,
    send: &SendMessageRequestBody,
    transport: Transport,
) -> (Action, Option<Push>) {
    let checked = match validate_send(env, send) {
        Ok(v) => v,
        Err(action) => return (action, None),
    };
    let conversation = checked.conversation;
    let Some(peer) = conversation.conversation_id.peer_of(env.account.uid) else {
        let body = SendMessageResponseBody {
            status: Some(1),
            client_message_id: Some(checked.client_id.as_str().into()),
            ..SendMessageResponseBody::default()
        };
        return (send_reply(env, body), None);
    };
    let (message, push, ack_fault) = match record(env, checked, send, transport, peer) {
        Ok(recorded) => recorded,
        Err(action) => return (action, None),
    };
    let body = SendMessageResponseBody {
        server_message_id: Some(message.server_message_id),
        status: Some(0),
        client_message_id: Some(message.client_message_id.as_str().into()),
        check_code: Some(0),
        check_message: Some(Default::default()),
        inbox_page_category: Some(if conversation.message_request { 2 } else { 1 }),
        ..SendMessageResponseBody::default()
    };
    let reply = send_reply(env, body);
    let action = match (ack_fault, reply) {
        (Some(Fault::DropAcks), _) => Action::NoReply,
        (Some(f), Action::Reply(r)) => Action::ReplyLater(f.delay().unwrap_or_default(), r),
        (_, reply) => reply,
    };
    (action, push)
}

/// Stores the message, unless it repeats an earlier one (whose copy is
/// returned, with no push) or a limit refuses it. Also takes the ack fault
/// the reply is subject to.
fn record(
    env: &Envelope<'_>,
    checked: Checked<'_>,
    send: &SendMessageRequestBody,
    transport: Transport,
    peer: Uid,
) -> Result<(ReceivedMessage, Option<Push>, Option<Fault>), Action> {
    let sender = env.account.uid;
    let conversation = checked.conversation;
    let mut state = env.shared.lock();
    let key = (sender, checked.client_id.to_string());
    let (message, push) = if let Some(&index) = state.by_client_id.get(&key) {
        // A retransmission (or a caller's retry with the same id) gets the same answer.
        (state.messages[index].received.clone(), None)
    } else {
        let fault = state
            .faults
            .take(|f| matches!(f, Fault::MessageRequestLimit | Fault::RateLimit));
        let conv_id = conversation.conversation_id.as_str();
        let by = |uid: Uid| {
            state
                .messages
                .iter()
                .filter(|m| {
                    m.received.conversation_id == conv_id && m.received.sender_uid == uid.get()
                })
                .count()
        };
        let request_limited = conversation.message_request && by(peer) == 0 && by(sender) >= 1;
        match fault {
            Some(Fault::RateLimit) => return Err(business_rejection(env, &key.1, 7180)),
            Some(_) => return Err(business_rejection(env, &key.1, 7193)),
            None if request_limited => return Err(business_rejection(env, &key.1, 7193)),
            None => {}
        }
        let index = state.next_index(conv_id);
        let stored = store(env, checked, send, transport, index);
        let push = new_message_push(&stored.body, [sender, peer]);
        let message = stored.received.clone();
        let at = state.messages.len();
        state.by_client_id.insert(key, at);
        state.messages.push(stored);
        (message, Some(push))
    };
    let ack_fault = state
        .faults
        .take(|f| matches!(f, Fault::DropAcks | Fault::DelayAcks { .. }));
    Ok((message, push, ack_fault))
}

/// The accepted message as `/_sandbox/messages` shows it and as pushes and
/// history give it out.
fn store(
    env: &Envelope<'_>,
    checked: Checked<'_>,
    send: &SendMessageRequestBody,
    transport: Transport,
    index: i64,
) -> StoredMessage {
    let Checked {
        conversation,
        client_id,
        content,
    } = checked;
    let now = now_ms();
    let server_message_id = env.shared.next_server_message_id();
    let mut body = message_body(&Placed {
        conversation,
        sender: env.account.uid,
        client_message_id: client_id.as_str(),
        server_message_id,
        index,
        now,
    });
    body.message_type = send.message_type;
    body.content = send.content.clone();
    let (json, image) = match content {
        Content::Text(json) => (json, None),
        Content::Image(checked) => {
            body.scene = Some(SCENE_PRIVATE_IMAGE.into());
            body.content_pb = send.content_pb.as_ref().map(|c| c.encode_to_vec().into());
            let media = MediaRef {
                path: &checked.image.path,
                decrypt_key: &checked.decrypt_key,
                width: checked.image.width,
                height: checked.image.height,
            };
            body.media_info_list = vec![media_info(env.host, &media)];
            (serde_json::Value::Null, Some(checked.image))
        }
    };
    let received = ReceivedMessage {
        conversation_id: conversation.conversation_id.as_str().to_owned(),
        conversation_short_id: conversation.conversation_short_id.get(),
        server_message_id,
        client_message_id: client_id.to_string(),
        sender_uid: env.account.uid.get(),
        message_type: send.message_type.unwrap_or_default(),
        inbox_type: env.request.inbox_type.unwrap_or_default(),
        content: json,
        image,
        transport,
        received_at_ms: now as i64,
    };
    StoredMessage { received, body }
}
