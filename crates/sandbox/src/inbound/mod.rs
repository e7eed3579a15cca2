//! `POST /_sandbox/inbound`: a seeded account sends into one of its
//! conversations as if from another device, so inbound paths can be tested.
//! A message (text, image or both: image first, as TikTok web sends them) is
//! stored and pushed like a cmd-100 send (`message.rs`); `typing`, `read` and
//! `reaction` push cmd 510, 501 and 705 (`signal.rs`).

mod message;
mod signal;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tiktok_dm_proto::ids::Uid;

use crate::http::Addressed;
use crate::seed::{Account, Conversation};
use crate::state::Shared;

/// The JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundRequest {
    /// The sender's seed name.
    from: String,
    conversation_id: String,
    #[serde(default)]
    text: Option<String>,
    /// Base64 of the image's bytes.
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    typing: bool,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    reaction: Option<signal::ReactionRequest>,
}

/// A refused request: its status and what is wrong, answered as
/// `{"error": ...}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// Who sends into which conversation, checked against the seed.
struct Sender<'a> {
    account: &'a Account,
    conversation: &'a Conversation,
    /// The other participant.
    peer: Uid,
}

/// What the request asks for.
enum Asked {
    Message {
        text: Option<String>,
        image: Option<String>,
    },
    Typing,
    Read,
    Reaction(signal::ReactionRequest),
}

/// `POST /_sandbox/inbound`: 201 with the stored messages, 202 `{}` for a
/// typing, read or reaction push, else a 4xx `{"error": ...}`.
pub(crate) async fn inbound(
    State(shared): State<Arc<Shared>>,
    addressed: Addressed,
    body: Bytes,
) -> Response {
    let request: InboundRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let example = r#"{"from":"bob","conversation_id":"0:1:…","text":"hello"}"#;
            return Refusal::bad_request(format!("invalid JSON: {e}; expected e.g. {example}"))
                .into_response();
        }
    };
    let sender = match sender(&shared, &request.from, &request.conversation_id) {
        Ok(sender) => sender,
        Err(refusal) => return refusal.into_response(),
    };
    let asked = match what_is_asked(request) {
        Ok(asked) => asked,
        Err(refusal) => return refusal.into_response(),
    };
    let answer = match asked {
        Asked::Message { text, image } => {
            message::send(&shared, &sender, &addressed, text, image).await
        }
        Asked::Typing => signal::typing(&shared, &sender),
        Asked::Read => signal::read(&shared, &sender),
        Asked::Reaction(reaction) => signal::reaction(&shared, &sender, &reaction),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// The one thing the request asks for.
fn what_is_asked(request: InboundRequest) -> Result<Asked, Refusal> {
    let InboundRequest {
        text,
        image,
        typing,
        read,
        reaction,
        ..
    } = request;
    let message = text.is_some() || image.is_some();
    match (message, typing, read, reaction) {
        (true, false, false, None) => Ok(Asked::Message { text, image }),
        (false, true, false, None) => Ok(Asked::Typing),
        (false, false, true, None) => Ok(Asked::Read),
        (false, false, false, Some(reaction)) => Ok(Asked::Reaction(reaction)),
        _ => Err(Refusal::bad_request(
            "give a message (\"text\", \"image\" or both), or one of \"typing\": true, \
             \"read\": true, \"reaction\"",
        )),
    }
}

/// The seeded account `from` and its conversation `conversation_id`.
fn sender<'a>(
    shared: &'a Shared,
    from: &str,
    conversation_id: &str,
) -> Result<Sender<'a>, Refusal> {
    let Some(account) = shared.account_named(from) else {
        return Err(Refusal::not_found(format!(
            "no seeded account is named {from:?}"
        )));
    };
    let Some(conversation) = shared.conversation(conversation_id) else {
        return Err(Refusal::not_found(format!(
            "no seeded conversation {conversation_id:?}"
        )));
    };
    let Some(peer) = conversation.conversation_id.peer_of(account.uid) else {
        return Err(Refusal::bad_request(format!(
            "{from:?} is not a participant of {conversation_id}"
        )));
    };
    Ok(Sender {
        account,
        conversation,
        peer,
    })
}
