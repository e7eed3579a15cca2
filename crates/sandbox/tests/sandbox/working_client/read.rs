//! The answers, read the way the working client reads them: the inbox's
//! conversation rows (6 → 203 → 2) and last-message rows (6 → 203 → 1), the
//! send's id (6 → 100 → 1, as text or a number), a socket frame's `__lz4`
//! payload and its chat event (1 = 500, 6 → 500 → {2, 5}), history rows
//! (6 → 301 → 1) and the cmd-2059 credentials (6 → 2059 → 1). Fields that
//! client declares as messages must parse as messages, as its decoder
//! requires; everything else it does not read is ignored, as it ignores it.

use super::pb::{self, all_bytes, bytes, text, uint};
use super::replay::Credentials;

/// A conversation as `parseInboxResponse` builds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub short_id: u64,
    pub participants: Vec<String>,
    pub conversation_type: u64,
}

/// The inbox answer: the merged conversations, and how many last-message
/// rows counted as real.
#[derive(Debug)]
pub struct Inbox {
    pub conversations: Vec<Conversation>,
    pub real_rows: usize,
}

fn well_formed(b: &[u8], message_fields: &[u64]) {
    assert!(pb::fields(b).is_some(), "not a protobuf message");
    for &n in message_fields {
        for nested in all_bytes(b, n) {
            assert!(
                pb::fields(&nested).is_some(),
                "field {n} must parse as a message"
            );
        }
    }
}

/// The tail two ids of `0:1:<a>:<b>`.
fn ids_of(id: &str) -> Vec<String> {
    let parts: Vec<&str> = id.split(':').collect();
    parts[parts.len().saturating_sub(2)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// `parseConversationDetailProto`: 1 id, 2 short id, 3 type, 6 → 1 members.
fn from_detail(d: &[u8]) -> Option<Conversation> {
    well_formed(d, &[6, 50, 51]);
    let id = text(d, 1).filter(|s| !s.is_empty())?;
    let members = bytes(d, 6).unwrap_or_default();
    well_formed(&members, &[1]);
    let mut participants: Vec<String> = all_bytes(&members, 1)
        .iter()
        .filter_map(|m| uint(m, 1).filter(|u| *u != 0))
        .map(|u| u.to_string())
        .collect();
    if participants.is_empty() && id.contains(':') {
        participants = ids_of(&id);
    }
    Some(Conversation {
        short_id: uint(d, 2).unwrap_or_default(),
        conversation_type: uint(d, 3).unwrap_or_default(),
        participants,
        id,
    })
}

/// `hasRealMessageProto` and `parseConversationEntryProto`.
fn from_row(e: &[u8]) -> Option<Conversation> {
    well_formed(e, &[9]);
    let preview = bytes(e, 8).unwrap_or_default();
    let preview = String::from_utf8_lossy(&preview);
    let real = (!preview.is_empty() && !preview.trim().eq_ignore_ascii_case("placeholder"))
        || [5, 3, 6]
            .iter()
            .any(|&n| uint(e, n).unwrap_or_default() != 0);
    if !real {
        return None;
    }
    let id = text(e, 1).filter(|s| !s.is_empty())?;
    Some(Conversation {
        short_id: uint(e, 5).unwrap_or_default(),
        conversation_type: uint(e, 2).unwrap_or_default(),
        participants: ids_of(&id),
        id,
    })
}

/// `mergeInboxConversations`.
fn merge(existing: &mut Vec<Conversation>, incoming: Vec<Conversation>) {
    for conv in incoming {
        match existing.iter_mut().find(|c| c.id == conv.id) {
            Some(known) => {
                if known.short_id == 0 {
                    known.short_id = conv.short_id;
                }
                if conv.conversation_type != 0 {
                    known.conversation_type = conv.conversation_type;
                }
                for p in conv.participants {
                    if !known.participants.contains(&p) {
                        known.participants.push(p);
                    }
                }
            }
            None => existing.push(conv),
        }
    }
}

/// `parseInboxResponse`: conversation rows first, then the real rows of
/// field 1, deduplicated by id.
pub fn inbox(body: &[u8]) -> Inbox {
    well_formed(body, &[6]);
    let payload = bytes(body, 6).unwrap_or_default();
    well_formed(&payload, &[203]);
    let list = bytes(&payload, 203).unwrap_or_default();
    well_formed(&list, &[1, 2]);
    let mut conversations = Vec::new();
    let details = all_bytes(&list, 2)
        .iter()
        .filter_map(|d| from_detail(d))
        .collect();
    merge(&mut conversations, details);
    let mut rows: Vec<Conversation> = Vec::new();
    for row in all_bytes(&list, 1).iter().filter_map(|e| from_row(e)) {
        if !rows.iter().any(|r| r.id == row.id) {
            rows.push(row);
        }
    }
    let real_rows = rows.len();
    merge(&mut conversations, rows);
    Inbox {
        conversations,
        real_rows,
    }
}

/// `extractSendResponseMessageID`: 6 (then 8) → 100 → 1, a string or a
/// number.
pub fn send_id(body: &[u8]) -> Option<String> {
    [6, 8].iter().find_map(|&outer| {
        let payload = bytes(body, outer)?;
        let send = bytes(&payload, 100)?;
        pb::string_or_varint(&send, 1)
    })
}

/// A chat message as that client keeps it, from a socket event's detail or
/// a history row (the same field numbers).
#[derive(Clone, Debug, Default)]
pub struct Message {
    pub conversation_id: String,
    pub server_id: u64,
    pub timestamp_us: u64,
    pub sender: String,
    pub client_message_id: String,
    /// "text", "image" or empty (content it does not show).
    pub kind: String,
    pub text: String,
    pub subtype: String,
    pub media_url: String,
    pub decrypt_key: String,
    pub width: u64,
    pub height: u64,
    pub cursor: u64,
}

/// `parseMessageContent` for the kinds the sandbox stores: aweType 0, 700
/// and 703 are text; content without an aweType shows nothing.
fn content(json: &[u8]) -> (String, String) {
    let parsed: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
    match parsed["aweType"].as_f64().map(|t| t as i64) {
        Some(0 | 700 | 703) => (
            "text".into(),
            parsed["text"].as_str().unwrap_or_default().into(),
        ),
        Some(other) => (format!("type_{other}"), String::new()),
        None => (String::new(), String::new()),
    }
}

/// `parsePrivateImageAttachmentProto`: the key, and the variant labelled
/// "full" (else the first with a URL).
fn private_image(media: &[u8]) -> (String, String, u64, u64) {
    well_formed(media, &[20]);
    let key = text(media, 3).unwrap_or_default();
    let variants: Vec<(String, String, u64, u64)> = all_bytes(media, 20)
        .iter()
        .filter_map(|v| {
            let url = pb::all(v, 2).into_iter().find_map(|r| match r {
                pb::Raw::Bytes(b) if !b.is_empty() => Some(String::from_utf8_lossy(&b).into()),
                _ => None,
            })?;
            let label = text(v, 1).unwrap_or_default().trim().to_ascii_lowercase();
            let size = (uint(v, 20).unwrap_or(0), uint(v, 21).unwrap_or(0));
            Some((label, url, size.0, size.1))
        })
        .collect();
    let chosen = variants
        .iter()
        .find(|(label, url, ..)| label == "full" || url.contains("default.image"))
        .or(variants.first());
    match chosen {
        Some((_, url, w, h)) => (url.clone(), key, *w, *h),
        None => (String::new(), key, 0, 0),
    }
}

/// One message from its detail or row bytes.
fn message(conversation_id: String, d: &[u8]) -> Message {
    well_formed(d, &[9, 15, 18, 20, 24]);
    let client_message_id = all_bytes(d, 9)
        .iter()
        .find(|tag| text(tag, 1).as_deref() == Some("s:client_message_id"))
        .and_then(|tag| text(tag, 2))
        .unwrap_or_default();
    let (kind, body) = content(&bytes(d, 8).unwrap_or_default());
    let mut m = Message {
        conversation_id,
        server_id: uint(d, 3).unwrap_or_default(),
        timestamp_us: uint(d, 4).unwrap_or_default(),
        sender: uint(d, 7).unwrap_or_default().to_string(),
        client_message_id,
        kind,
        text: body,
        subtype: text(d, 21).unwrap_or_default(),
        cursor: uint(d, 25).unwrap_or_default(),
        ..Message::default()
    };
    if let Some(media) = bytes(d, 24) {
        let (url, key, w, h) = private_image(&media);
        if m.subtype.eq_ignore_ascii_case("private_image") || !key.is_empty() || !url.is_empty() {
            m.kind = "image".into();
            (m.media_url, m.decrypt_key, m.width, m.height) = (url, key, w, h);
            if m.text.is_empty() {
                m.text = "[photo]".into();
            }
        }
    }
    m
}

/// `parseWSFrame`: the outer frame (with field 8 LZ4-inflated when field 6
/// says `__lz4`), then the event; `Ok(None)` for frames that are not a chat
/// event, `Err` for what that client reports as a parse failure.
pub fn ws_frame(data: &[u8]) -> Result<Option<Message>, String> {
    pb::fields(data).ok_or("decode outer envelope")?;
    for n in [5, 7, 14] {
        for nested in all_bytes(data, n) {
            pb::fields(&nested).ok_or(format!("outer field {n} is not a message"))?;
        }
    }
    // A singular bytes field: the last occurrence wins.
    let Some(payload) = all_bytes(data, 8).pop().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let inner = if bytes(data, 6).as_deref() == Some(b"__lz4") {
        pb::lz4_growing(&payload).ok_or("LZ4 block decompress failed")?
    } else {
        payload
    };
    pb::fields(&inner).ok_or("decode inner envelope")?;
    let inner_type = uint(&inner, 1).unwrap_or_default();
    let commands = bytes(&inner, 6);
    if inner_type != 500 {
        return Ok(None);
    }
    let Some(chat) = commands.and_then(|c| bytes(&c, 500)) else {
        return Ok(None);
    };
    let conversation_id = text(&chat, 2).unwrap_or_default();
    if conversation_id.is_empty() {
        return Err("conversation ID missing from chat container".into());
    }
    let detail = bytes(&chat, 5).ok_or("message detail (chat.5) missing")?;
    Ok(Some(message(conversation_id, &detail)))
}

/// `parseGetByConversationResponse`: the rows of 6 → 301 → 1 in
/// chronological order (the answer is newest first), and the next cursor
/// (the last non-zero field 25 of the rows, empty when none).
pub fn history(body: &[u8]) -> (Vec<Message>, String) {
    well_formed(body, &[6]);
    let payload = bytes(body, 6).unwrap_or_default();
    well_formed(&payload, &[301]);
    let list = bytes(&payload, 301).unwrap_or_default();
    well_formed(&list, &[1]);
    let mut cursor = 0;
    let mut messages: Vec<Message> = all_bytes(&list, 1)
        .iter()
        .map(|row| {
            let m = message(text(row, 1).unwrap_or_default(), row);
            if m.cursor != 0 {
                cursor = m.cursor;
            }
            m
        })
        .collect();
    messages.reverse();
    let next = if cursor == 0 {
        String::new()
    } else {
        cursor.to_string()
    };
    (messages, next)
}

/// `getImageUploadConfig`: the first entry of 6 → 2059 → 1 with every value
/// set and `upload_kind` 1.
pub fn upload_credentials(body: &[u8]) -> Option<Credentials> {
    let list = bytes(&bytes(body, 6)?, 2059)?;
    all_bytes(&list, 1).iter().find_map(|e| {
        let s = |n| text(e, n).filter(|v| !v.is_empty());
        if uint(e, 1) != Some(1) {
            return None;
        }
        Some(Credentials {
            service_id: s(2)?,
            host: s(3)?,
            access_key_id: s(6)?,
            security_token: s(7)?,
            secret: s(8)?,
        })
    })
}
