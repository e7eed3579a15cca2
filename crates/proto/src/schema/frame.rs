//! The pbbp2 frontier envelope (PROTOCOL.md 1.5).

use crate::wire::{Bytes, Int32, Msg, Str, UInt64};

message! {
    /// One WebSocket binary message on the frontier socket.
    pub struct Frame {
        /// Uplink IM frames: equals `Request.sequence_id`. Downlink: a server value.
        1 => seqid: optional UInt64,
        /// Uplink: client send time in ms. Downlink: a server trace id.
        2 => logid: optional UInt64,
        /// 5 for IM requests and replies, 20032 for bsync pushes.
        3 => service: optional Int32,
        /// 1 for IM requests.
        4 => method: optional Int32,
        /// Signature headers plus the SDK's header map (uplink); frontier metadata (downlink).
        5 => headers: repeated Msg<ExtendedEntry>,
        /// `"gzip"` on downlink pushes; absent uplink.
        6 => payload_encoding: optional Str,
        /// `"pb"` for IM requests.
        7 => payload_type: optional Str,
        /// The serialized `Request`, or a (possibly gzip) `Response`.
        8 => payload: optional Bytes,
    }
}

message! {
    /// A key/value pair: `Frame.ExtendedEntry`, and the wire form of every
    /// `map<string,string>` in the protocol. Both halves are always written.
    pub struct ExtendedEntry {
        /// The key.
        1 => key: optional Str,
        /// The value (written even when empty).
        2 => value: optional Str,
    }
}

impl ExtendedEntry {
    /// An entry with both key and value present.
    pub fn new(
        key: impl Into<crate::wire::PbString>,
        value: impl Into<crate::wire::PbString>,
    ) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// The key, or `""` when absent.
    pub fn key_str(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// The value, or `""` when absent.
    pub fn value_str(&self) -> &str {
        self.value.as_deref().unwrap_or_default()
    }
}

/// Looks up the first entry with `key` in an ordered map.
pub fn map_get<'a>(entries: &'a [ExtendedEntry], key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|e| e.key_str() == key)
        .map(ExtendedEntry::value_str)
}
