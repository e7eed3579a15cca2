//! The sandbox's shared state: seed data, accepted messages (with the
//! `MessageBody` pushes and history give out), faults, and the connected
//! sockets pushes go to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::MessageBody;
use tokio::sync::mpsc;

use crate::faults::Faults;
use crate::seed::{Account, Conversation, Seed};

/// How a request reached the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The frontier WebSocket.
    Ws,
    /// The im-api HTTP routes.
    Http,
    /// Made by `POST /_sandbox/inbound`, as if the sender had sent it from
    /// another device.
    Inbound,
}

/// One message the sandbox accepted, as `GET /_sandbox/messages` shows it.
/// 64-bit ids are written as JSON strings: JavaScript numbers cannot hold them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedMessage {
    /// Conversation id.
    pub conversation_id: String,
    /// Conversation short id.
    #[serde(serialize_with = "as_string")]
    pub conversation_short_id: i64,
    /// The id the sandbox assigned.
    #[serde(serialize_with = "as_string")]
    pub server_message_id: i64,
    /// The client's id (the de-duplication key).
    pub client_message_id: String,
    /// Sender uid.
    #[serde(serialize_with = "as_string")]
    pub sender_uid: i64,
    /// `message_type`.
    pub message_type: i32,
    /// The `inbox_type` the send came with (0 direct, 3 message request).
    pub inbox_type: i32,
    /// The content string parsed as JSON; `null` for a `private_image` (1802),
    /// whose content string is empty.
    pub content: serde_json::Value,
    /// The image of a `private_image` (1802) message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ReceivedImage>,
    /// How it arrived (the first time).
    pub transport: Transport,
    /// When it was stored (Unix ms).
    pub received_at_ms: i64,
}

/// The image a `private_image` (1802) message carries, as the sandbox found it
/// after opening the committed upload with the message's `decrypt_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceivedImage {
    /// The upload's path (`Encryption.Uri` of the commit).
    pub path: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the decrypted image in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the decrypted image.
    pub sha256: String,
}

/// An accepted message and the `MessageBody` that pushes and cmd 301 give out.
#[derive(Clone, Debug)]
pub(crate) struct StoredMessage {
    pub(crate) received: ReceivedMessage,
    pub(crate) body: MessageBody,
}

fn as_string<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// How a socket's downlink frames are encoded (PROTOCOL.md 10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Downlink {
    /// The fpid-9 socket: replies and pushes are one raw LZ4 block
    /// (`payload_encoding` `__lz4`, `payload_type` `pb`).
    Lz4,
    /// Any other socket: plain replies and gzip pushes.
    Legacy,
}

/// One open socket of an account.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<Outbound>,
    pub(crate) downlink: Downlink,
}

/// What a socket task is asked to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Send one binary frame.
    Frame(Vec<u8>),
    /// Send a text message (the `"hi"` heartbeat).
    Text(&'static str),
    /// Send a close frame and stop.
    Close,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) messages: Vec<StoredMessage>,
    /// (sender, client message id) -> index in `messages`.
    pub(crate) by_client_id: HashMap<(Uid, String), usize>,
    /// Conversation id -> the last `index_in_conversation` given out there.
    pub(crate) last_index: HashMap<String, i64>,
    pub(crate) faults: Faults,
    pub(crate) sockets: HashMap<Uid, Vec<Socket>>,
    pub(crate) handshakes: u64,
    pub(crate) heartbeats: u64,
    pub(crate) upload: crate::upload::UploadState,
}

impl State {
    /// The next `index_in_conversation` of `conversation_id`: microseconds now,
    /// but always above the last one given there, so history pages by it.
    pub(crate) fn next_index(&mut self, conversation_id: &str) -> i64 {
        let now = (now_ms() * 1000) as i64;
        let last = self
            .last_index
            .entry(conversation_id.to_owned())
            .or_default();
        *last = now.max(*last + 1);
        *last
    }
}

pub(crate) struct Shared {
    pub(crate) seed: Seed,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Whether HTTP sends must carry a valid ticket guard (`ticket_guard.rs`).
    pub(crate) require_ticket_guard: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn new(seed: Seed) -> Self {
        Self {
            seed,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            require_ticket_guard: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Locks the state. A panic while holding the lock cannot leave it
    /// half-updated in a way that matters for an emulator, so poison is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn account_by_session(&self, session: &str) -> Option<&Account> {
        self.seed.accounts.iter().find(|a| a.session == session)
    }

    pub(crate) fn account_by_uid(&self, uid: Uid) -> Option<&Account> {
        self.seed.accounts.iter().find(|a| a.uid == uid)
    }

    pub(crate) fn account_named(&self, name: &str) -> Option<&Account> {
        self.seed.accounts.iter().find(|a| a.name == name)
    }

    pub(crate) fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.seed
            .conversations
            .iter()
            .find(|c| c.conversation_id.as_str() == id)
    }

    /// A server message id shaped like TikTok's: Unix seconds in the high 32 bits
    /// (as in the captured 7671934208033474061) and a counter below.
    pub(crate) fn next_server_message_id(&self) -> i64 {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        ((now_ms() / 1000) << 32 | (n & 0xffff_ffff)) as i64
    }

    pub(crate) fn next_counter(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A TikTok-shaped log id: `yyyyMMddHHmmss` (UTC) and 20 upper-case hex chars.
pub(crate) fn log_id(ms: u64, counter: u64) -> String {
    format!(
        "{}{:020X}",
        tiktok_dm_proto::time::Utc::from_unix(ms / 1000).compact(),
        u128::from(counter).wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xffff_ffff_ffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_have_the_captured_shape() {
        // 1786261382860 ms is the capture's request_arrived_time; its log id
        // starts 20260809074302.
        let id = log_id(1_786_261_382_860, 7);
        assert_eq!(id.len(), 34);
        assert!(id.starts_with("20260809074302"), "{id}");
        assert!(
            id[14..]
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
}
