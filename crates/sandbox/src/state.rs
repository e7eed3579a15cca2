//! The sandbox's shared state: seed data, accepted messages, faults, and the
//! connected sockets pushes go to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tiktok_dm_proto::ids::Uid;
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
    /// The content string parsed as JSON.
    pub content: serde_json::Value,
    /// How it arrived (the first time).
    pub transport: Transport,
    /// When it was stored (Unix ms).
    pub received_at_ms: i64,
}

fn as_string<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
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
    pub(crate) messages: Vec<ReceivedMessage>,
    /// (sender, client message id) -> index in `messages`.
    pub(crate) by_client_id: HashMap<(Uid, String), usize>,
    pub(crate) faults: Faults,
    pub(crate) sockets: HashMap<Uid, Vec<(u64, mpsc::UnboundedSender<Outbound>)>>,
    pub(crate) handshakes: u64,
    pub(crate) heartbeats: u64,
    pub(crate) upload: crate::upload::UploadState,
}

pub(crate) struct Shared {
    pub(crate) seed: Seed,
    pub(crate) upload_backend: crate::upload::UploadBackend,
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(seed: Seed, upload_backend: crate::upload::UploadBackend) -> Self {
        Self {
            seed,
            upload_backend,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
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
