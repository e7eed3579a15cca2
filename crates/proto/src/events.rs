//! Typed events read from pushes (cmd 500, 501, 510, 705) and from listed
//! messages (cmd 203 and 301), PROTOCOL.md 1.10 and 10.2.
//!
//! One [`MessageBody`] can be a chat message, a reaction (ext
//! `s:property_modify`), a recall (ext `s:recall_uid`), a delete for the
//! reader only (content `{"command_type":2,...}`) or a read receipt (content
//! `{"command_type":1,...}`): [`from_message`] tells them apart the way the
//! working open-source client does. The shapes of the 501 and 510 pushes are
//! not public; they are read as NewMessageNotify-shaped (inferred, see
//! docs/inferred-behaviour.md).
//!
//! Ids are serialised as strings: they are 64-bit and JavaScript readers
//! would round them.

use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::content::SCENE_PRIVATE_IMAGE;
use crate::ids::Uid;
use crate::schema::{MessageBody, NewMessageNotify, PropertyUpdateNotify, Response, map_get};

/// `message_type` of a private image.
pub const MESSAGE_TYPE_PRIVATE_IMAGE: i32 = 1802;

/// One thing that happened in a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A message, ours (echoed back) or theirs.
    #[serde(rename = "message.received")]
    MessageReceived(ReceivedMessage),
    /// A participant read the conversation up to a point.
    #[serde(rename = "message.read")]
    MessageRead(ReadReceipt),
    /// A participant is typing.
    #[serde(rename = "typing")]
    Typing(Typing),
    /// Reactions were added to or removed from a message.
    #[serde(rename = "reaction")]
    Reaction(Reaction),
    /// A message was recalled, or hidden for the reader.
    #[serde(rename = "message.deleted")]
    MessageDeleted(Deletion),
}

impl Event {
    /// The event's type name (`message.received`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::MessageReceived(_) => "message.received",
            Self::MessageRead(_) => "message.read",
            Self::Typing(_) => "typing",
            Self::Reaction(_) => "reaction",
            Self::MessageDeleted(_) => "message.deleted",
        }
    }

    /// The conversation the event belongs to.
    pub fn conversation_id(&self) -> &str {
        match self {
            Self::MessageReceived(m) => &m.conversation_id,
            Self::MessageRead(r) => &r.conversation_id,
            Self::Typing(t) => &t.conversation_id,
            Self::Reaction(r) => &r.conversation_id,
            Self::MessageDeleted(d) => &d.conversation_id,
        }
    }

    /// A key that is the same each time the same event is read, from a push
    /// or from a listing, so a reader can drop repeats. Typing has none: it
    /// is never listed and repeats are harmless.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            Self::MessageReceived(m) => Some(format!("m:{}", m.server_message_id)),
            Self::MessageDeleted(d) => Some(format!(
                "d:{}:{}:{}",
                d.server_message_id, d.only_for_me, d.by_uid
            )),
            Self::MessageRead(r) => r
                .read_index
                .map(|i| format!("r:{}:{}:{i}", r.conversation_id, r.reader_uid)),
            Self::Reaction(r) => r.event_message_id.map(|id| format!("x:{id}")),
            Self::Typing(_) => None,
        }
    }
}

/// Whether a message was sent by the listening account (an echo) or to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Sent by someone else.
    Inbound,
    /// Sent by the listening account (from here or from another device).
    Outbound,
}

/// What a received message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedKind {
    /// Text.
    Text,
    /// A private image.
    Image,
    /// Anything else (stickers, shared videos, ...): see `content`.
    Other,
}

/// A chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    /// Conversation id.
    pub conversation_id: String,
    /// Conversation short id, when the message carries it.
    #[serde(with = "opt_id", default)]
    pub conversation_short_id: Option<i64>,
    /// Server message id: the message's identity.
    #[serde(with = "id")]
    pub server_message_id: i64,
    /// The sender's client message id (ext `s:client_message_id`).
    #[serde(default)]
    pub client_message_id: Option<String>,
    /// Sender uid.
    #[serde(with = "id")]
    pub sender_uid: i64,
    /// When it was sent (ms since the epoch).
    pub created_at_ms: i64,
    /// Ours or theirs.
    pub direction: Direction,
    /// Text, image or other.
    pub kind: ReceivedKind,
    /// The text of a text message.
    #[serde(default)]
    pub text: Option<String>,
    /// The image of an image message.
    #[serde(default)]
    pub image: Option<ReceivedImage>,
    /// `message_type`.
    pub message_type: i32,
    /// The raw content JSON, kept for kinds we do not read.
    pub content: String,
    /// `index_in_conversation` (microseconds), the history cursor.
    #[serde(with = "opt_id", default)]
    pub index_in_conversation: Option<i64>,
}

/// A received private image: where its encrypted blob is and how to open it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedImage {
    /// The asset's path.
    pub path: String,
    /// URLs of the encrypted blob, best first.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Hex AES-256-GCM key of the blob.
    pub decrypt_key: String,
    /// Width, when known.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height, when known.
    #[serde(default)]
    pub height: Option<u32>,
}

/// A read receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReceipt {
    /// Conversation id.
    pub conversation_id: String,
    /// Who read.
    #[serde(with = "id")]
    pub reader_uid: i64,
    /// Read up to this `index_in_conversation`, when given.
    #[serde(with = "opt_id", default)]
    pub read_index: Option<i64>,
    /// Ours or theirs.
    pub direction: Direction,
}

/// A typing indicator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// Conversation id.
    pub conversation_id: String,
    /// Who is typing.
    #[serde(with = "id")]
    pub uid: i64,
}

/// A change to a message's reactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Conversation id.
    pub conversation_id: String,
    /// The message reacted to.
    #[serde(with = "id")]
    pub server_message_id: i64,
    /// Who reacted.
    #[serde(with = "id")]
    pub uid: i64,
    /// What changed.
    pub changes: Vec<ReactionChange>,
    /// The server message id of the event itself, when it came as a message.
    #[serde(with = "opt_id", default, skip_serializing_if = "Option::is_none")]
    pub event_message_id: Option<i64>,
}

/// One reaction added or removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionChange {
    /// `add` or `remove`.
    pub op: ReactionOp,
    /// The emoji (or TikTok's alias for it, e.g. `love`).
    pub emoji: String,
}

/// Added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReactionOp {
    /// Added.
    Add,
    /// Removed.
    Remove,
}

/// A deleted message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// Conversation id.
    pub conversation_id: String,
    /// The deleted message.
    #[serde(with = "id")]
    pub server_message_id: i64,
    /// Who deleted it (0 when not given).
    #[serde(with = "id")]
    pub by_uid: i64,
    /// Hidden for the reader only (`command_type` 2), not recalled for everyone.
    pub only_for_me: bool,
}

/// Reads every event a push carries. Pushes of other commands give none.
pub fn events_from_response(response: &Response, own: Option<Uid>) -> Vec<Event> {
    let Some(body) = response.body.as_ref() else {
        return Vec::new();
    };
    match response.cmd {
        Some(cmd::NEW_MSG_NOTIFY) => notified(&body.has_new_message_notify, own, from_message),
        Some(cmd::READ_NOTIFY) => notified(&body.read_notify, own, read_push),
        Some(cmd::TYPING_NOTIFY) => notified(&body.typing_notify, own, typing_push),
        Some(cmd::PROPERTY_UPDATE_NOTIFY) => body
            .property_update_notify
            .as_ref()
            .and_then(property_update)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn notified(
    notifies: &[NewMessageNotify],
    own: Option<Uid>,
    read: fn(&MessageBody, &str, Option<Uid>) -> Option<Event>,
) -> Vec<Event> {
    notifies
        .iter()
        .filter_map(|n| {
            let m = n.message.as_ref()?;
            let conversation = m
                .conversation_id
                .as_deref()
                .or(n.conversation_id.as_deref())?;
            read(m, conversation, own)
        })
        .collect()
}

fn read_push(m: &MessageBody, conversation: &str, own: Option<Uid>) -> Option<Event> {
    let read_index = command_field(m, "read_index").or(m.index_in_conversation);
    Some(Event::MessageRead(ReadReceipt {
        conversation_id: conversation.to_owned(),
        reader_uid: m.sender?,
        read_index,
        direction: direction(m.sender, own),
    }))
}

fn typing_push(m: &MessageBody, conversation: &str, _: Option<Uid>) -> Option<Event> {
    Some(Event::Typing(Typing {
        conversation_id: conversation.to_owned(),
        uid: m.sender?,
    }))
}

fn direction(sender: Option<i64>, own: Option<Uid>) -> Direction {
    match (sender, own) {
        (Some(s), Some(own)) if s == own.get() => Direction::Outbound,
        _ => Direction::Inbound,
    }
}

/// Reads one message as an event: a chat message, a reaction, a recall, a
/// delete for the reader, or a read receipt. `None` for a body without the
/// ids an event needs, and for conversation commands we do not read.
pub fn from_message(m: &MessageBody, conversation: &str, own: Option<Uid>) -> Option<Event> {
    if let Some(json) = map_get(&m.ext, "s:property_modify") {
        return reaction(conversation, json, &m.ext, m.server_message_id);
    }
    if let Some(by) = map_get(&m.ext, "s:recall_uid") {
        let id = map_get(&m.ext, "s:server_message_id")?.parse().ok()?;
        return Some(Event::MessageDeleted(Deletion {
            conversation_id: conversation.to_owned(),
            server_message_id: id,
            by_uid: by.parse().ok().or(m.sender).unwrap_or_default(),
            only_for_me: false,
        }));
    }
    match command_field(m, "command_type") {
        Some(2) => Some(Event::MessageDeleted(Deletion {
            conversation_id: conversation.to_owned(),
            server_message_id: command_field(m, "message_id")?,
            by_uid: m.sender.unwrap_or_default(),
            only_for_me: true,
        })),
        Some(1) => read_push(m, conversation, own),
        Some(_) => None,
        None => chat_message(m, conversation, own).map(Event::MessageReceived),
    }
}

fn command_field(m: &MessageBody, key: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(m.content.as_deref()?).ok()?;
    let field = value.get(key)?;
    field.as_i64().or_else(|| field.as_str()?.parse().ok())
}

fn chat_message(m: &MessageBody, conversation: &str, own: Option<Uid>) -> Option<ReceivedMessage> {
    let content = m.content.as_deref().unwrap_or_default().to_owned();
    let text = crate::content::parse_content(&content)
        .ok()
        .and_then(|c| c.text);
    let image = received_image(m);
    let kind = if image.is_some() {
        ReceivedKind::Image
    } else if text.is_some() {
        ReceivedKind::Text
    } else {
        ReceivedKind::Other
    };
    let created_at_ms = created_at_ms(m);
    Some(ReceivedMessage {
        conversation_id: conversation.to_owned(),
        conversation_short_id: m.conversation_short_id,
        server_message_id: m.server_message_id?,
        client_message_id: map_get(&m.ext, "s:client_message_id").map(str::to_owned),
        sender_uid: m.sender?,
        created_at_ms,
        direction: direction(m.sender, own),
        kind,
        text: if kind == ReceivedKind::Text {
            text
        } else {
            None
        },
        image,
        message_type: m.message_type.unwrap_or_default(),
        content,
        index_in_conversation: m.index_in_conversation,
    })
}

/// When a message was sent (ms): its `create_time`, else its index (a
/// microsecond time, PROTOCOL.md 1.10), else 0.
pub fn created_at_ms(m: &MessageBody) -> i64 {
    m.create_time
        .filter(|t| *t > 0)
        .or(m.index_in_conversation.map(|us| us / 1000))
        .unwrap_or_default()
}

fn received_image(m: &MessageBody) -> Option<ReceivedImage> {
    let is_image = m.scene.as_deref() == Some(SCENE_PRIVATE_IMAGE)
        || m.message_type == Some(MESSAGE_TYPE_PRIVATE_IMAGE);
    if !is_image {
        return None;
    }
    let media = m.media_info_list.first()?;
    let dimension = |pick: fn(&crate::schema::MediaVariant) -> Option<i64>| {
        media
            .variants
            .iter()
            .find_map(pick)
            .and_then(|v| u32::try_from(v).ok())
    };
    Some(ReceivedImage {
        path: media.path.as_deref()?.to_owned(),
        urls: media
            .variants
            .iter()
            .flat_map(|v| v.urls.iter().map(|u| u.to_string()))
            .collect(),
        decrypt_key: media.decrypt_key.as_deref()?.to_owned(),
        width: dimension(|v| v.width),
        height: dimension(|v| v.height),
    })
}

#[derive(Deserialize)]
struct PropertyModify {
    #[serde(rename = "UserId", default)]
    user_id: Option<i64>,
    #[serde(rename = "ServerMessageId", default)]
    server_message_id: Option<i64>,
    #[serde(rename = "Modifys", default)]
    modifys: Vec<PropertyModifyOp>,
}

#[derive(Deserialize)]
struct PropertyModifyOp {
    #[serde(rename = "Op", default)]
    op: i64,
    #[serde(rename = "Key", default)]
    key: String,
}

fn property_update(p: &PropertyUpdateNotify) -> Option<Event> {
    let json = map_get(&p.ext, "s:property_modify")?;
    reaction(p.conversation_id.as_deref()?, json, &p.ext, None)
}

fn reaction(
    conversation: &str,
    json: &str,
    ext: &[crate::schema::ExtendedEntry],
    event_message_id: Option<i64>,
) -> Option<Event> {
    let modify: PropertyModify = serde_json::from_str(json).ok()?;
    let target = modify
        .server_message_id
        .filter(|id| *id != 0)
        .or_else(|| map_get(ext, "s:server_message_id")?.parse().ok())?;
    let changes: Vec<ReactionChange> = modify
        .modifys
        .iter()
        .filter_map(|m| {
            let emoji = m.key.strip_prefix("e:").unwrap_or(&m.key);
            (!emoji.is_empty()).then(|| ReactionChange {
                op: if m.op == 1 {
                    ReactionOp::Remove
                } else {
                    ReactionOp::Add
                },
                emoji: emoji.to_owned(),
            })
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    Some(Event::Reaction(Reaction {
        conversation_id: conversation.to_owned(),
        server_message_id: target,
        uid: modify.user_id.unwrap_or_default(),
        changes,
        event_message_id,
    }))
}

mod id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(n),
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// An optional 64-bit id as a JSON string (`#[serde(with = ...)]`); reads a
/// string or a number.
pub mod opt_id {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the id as a string, or null.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    /// Reads a string or a number, or null.
    ///
    /// # Errors
    /// A string that is not a 64-bit integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::N(n)) => Ok(Some(n)),
            Some(Either::S(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}
