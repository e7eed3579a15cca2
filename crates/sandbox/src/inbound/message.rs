//! The messages of `/_sandbox/inbound`: stored exactly as a cmd-100 send of
//! the sender would be (a server message id, the next index, a fresh client
//! message id), listed by history, the inbox and `/_sandbox/messages`, and
//! pushed as cmd 500 to every socket of both participants. An image is
//! stored encrypted like a `cipher_v2` commit and sent as a `private_image`
//! (1802) whose media URL is `/im/media/{path}`.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tiktok_dm_proto::Message as _;
use tiktok_dm_proto::codec::{PrivateImage, SendParams, private_image_request};
use tiktok_dm_proto::content::{
    MAX_TEXT_UTF16_UNITS, MESSAGE_TYPE_PRIVATE_IMAGE, MESSAGE_TYPE_TEXT, SCENE_PRIVATE_IMAGE,
    text_content_json, utf16_len,
};
use tiktok_dm_proto::ids::ClientMessageId;
use tiktok_dm_proto::schema::MessageBody;

use super::{Refusal, Sender};
use crate::http::Addressed;
use crate::im::{MediaRef, Placed, media_info, message_body};
use crate::push::{Push, deliver, new_message_push};
use crate::state::{ReceivedImage, ReceivedMessage, Shared, StoredMessage, Transport, now_ms};
use crate::upload::{Sealed, store_encrypted};

/// What one inbound message carries.
enum Inbound {
    /// A text message's content JSON.
    Text(String),
    /// A stored, encrypted image.
    Image(Sealed),
}

/// Stores and pushes the image (first) and the text of one request; answers
/// 201 `{"messages": [...]}`.
pub(super) async fn send(
    shared: &Arc<Shared>,
    sender: &Sender<'_>,
    host: &Addressed,
    text: Option<String>,
    image: Option<String>,
) -> Result<Response, Refusal> {
    let text = text.map(|t| checked_text(&t)).transpose()?;
    let image = match image {
        Some(encoded) => Some(store_image(shared, sender, &encoded).await?),
        None => None,
    };
    let mut posted = Vec::new();
    for content in image.map(Inbound::Image).into_iter().chain(text) {
        let (entry, push) = record(shared, sender, host, content);
        deliver(shared, &push);
        posted.push(entry);
    }
    let answer = serde_json::json!({ "messages": posted });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A text that is not blank and within TikTok's limit, as content JSON.
fn checked_text(text: &str) -> Result<Inbound, Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::bad_request("\"text\" is empty"));
    }
    if utf16_len(text) > MAX_TEXT_UTF16_UNITS {
        return Err(Refusal::bad_request(format!(
            "\"text\" is longer than {MAX_TEXT_UTF16_UNITS} UTF-16 units"
        )));
    }
    Ok(Inbound::Text(text_content_json(text)))
}

/// Decodes the base64 image and stores it encrypted, off the runtime's
/// threads (hashing and sealing up to tens of MB is CPU work).
async fn store_image(
    shared: &Arc<Shared>,
    sender: &Sender<'_>,
    encoded: &str,
) -> Result<Sealed, Refusal> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| Refusal::bad_request(format!("\"image\" is not valid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(Refusal::bad_request("\"image\" is empty"));
    }
    let (owner, shared) = (sender.account.uid, Arc::clone(shared));
    let stored = tokio::task::spawn_blocking(move || store_encrypted(&shared, owner, &bytes)).await;
    match stored {
        Ok(Ok(sealed)) => Ok(sealed),
        Ok(Err(problem)) => Err(Refusal::bad_request(format!(
            "\"image\" is not an image the sandbox reads (PNG, JPEG, GIF, WebP): {problem}"
        ))),
        Err(_) => Err(Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "storing the image did not finish".into(),
        }),
    }
}

/// Stores one message under the conversation's next index; returns its
/// entry in the answer and its cmd-500 push.
fn record(
    shared: &Shared,
    sender: &Sender<'_>,
    host: &Addressed,
    content: Inbound,
) -> (serde_json::Value, Push) {
    let client_id = ClientMessageId::from_random_bytes(rand::random());
    let uid = sender.account.uid;
    let conversation = sender.conversation;
    let server_message_id = shared.next_server_message_id();
    let now = now_ms();
    let mut state = shared.lock();
    let index = state.next_index(conversation.conversation_id.as_str());
    let mut body = message_body(&Placed {
        conversation,
        sender: uid,
        client_message_id: client_id.as_str(),
        server_message_id,
        index,
        now,
    });
    let (kind, json, image) = fill(&mut body, sender, host, &client_id, content);
    let received = ReceivedMessage {
        conversation_id: conversation.conversation_id.as_str().to_owned(),
        conversation_short_id: conversation.conversation_short_id.get(),
        server_message_id,
        client_message_id: client_id.to_string(),
        sender_uid: uid.get(),
        message_type: body.message_type.unwrap_or_default(),
        inbox_type: conversation.inbox_type,
        content: json,
        image,
        transport: Transport::Inbound,
        received_at_ms: now as i64,
    };
    let push = new_message_push(&body, [uid, sender.peer]);
    let at = state.messages.len();
    state.by_client_id.insert((uid, client_id.to_string()), at);
    state.messages.push(StoredMessage { received, body });
    drop(state);
    let entry = serde_json::json!({
        "server_message_id": server_message_id.to_string(),
        "client_message_id": client_id.to_string(),
        "index_in_conversation": index.to_string(),
        "kind": kind,
    });
    (entry, push)
}

/// Sets the message's type and content; returns its kind, its content as
/// `/_sandbox/messages` shows it, and its image.
fn fill(
    body: &mut MessageBody,
    sender: &Sender<'_>,
    host: &Addressed,
    client_id: &ClientMessageId,
    content: Inbound,
) -> (&'static str, serde_json::Value, Option<ReceivedImage>) {
    match content {
        Inbound::Text(json) => {
            body.message_type = Some(MESSAGE_TYPE_TEXT);
            let parsed = serde_json::from_str(&json).unwrap_or(serde_json::Value::Null);
            body.content = Some(json.into());
            ("text", parsed, None)
        }
        Inbound::Image(sealed) => {
            body.message_type = Some(MESSAGE_TYPE_PRIVATE_IMAGE);
            body.content = Some("".into());
            body.scene = Some(SCENE_PRIVATE_IMAGE.into());
            body.content_pb = content_pb(sender, client_id, &sealed).map(Into::into);
            let media = MediaRef {
                path: &sealed.path,
                decrypt_key: &sealed.key_hex,
                width: sealed.width,
                height: sealed.height,
            };
            body.media_info_list = vec![media_info(host, &media)];
            let image = ReceivedImage {
                path: sealed.path,
                width: sealed.width,
                height: sealed.height,
                size: sealed.size,
                sha256: sealed.sha256,
            };
            ("image", serde_json::Value::Null, Some(image))
        }
    }
}

/// The encoded `content_pb` TikTok web's send of this image carries (the
/// sandbox echoes a sender's as it came).
fn content_pb(
    sender: &Sender<'_>,
    client_id: &ClientMessageId,
    sealed: &Sealed,
) -> Option<Vec<u8>> {
    let params = SendParams {
        conversation_id: &sender.conversation.conversation_id,
        conversation_short_id: sender.conversation.conversation_short_id,
        inbox_type: sender.conversation.inbox_type,
        content: "",
        message_type: MESSAGE_TYPE_PRIVATE_IMAGE,
        client_message_id: client_id,
        sequence_id: 0,
        context_headers: Vec::new(),
        device_id: &sender.account.wid,
    };
    let image = PrivateImage {
        path: sealed.path.clone(),
        decrypt_key: sealed.key_hex.clone(),
        width: sealed.width,
        height: sealed.height,
        size: sealed.size,
        file_name: "image".into(),
    };
    let request = private_image_request(params, &image);
    let send = request.body?.send_message_body?;
    Some(send.content_pb?.encode_to_vec())
}
