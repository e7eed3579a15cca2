//! Frame-level helpers: wrapping a request in a pbbp2 frame, reading a frame's
//! payload (inflating gzip), and building the send request the web client sends.

use crate::cmd;
use crate::error::DecodeError;
use crate::ids::{ClientMessageId, ConversationId, ConversationShortId, DeviceId};
use crate::schema::{ExtendedEntry, Frame, Request, RequestBody, Response, SendMessageRequestBody};
use crate::wire::{Blob, Message, Reader};

/// Largest inflated payload accepted from a gzip frame: a defence against
/// decompression bombs. Real pushes are a few KiB.
pub const MAX_INFLATED_PAYLOAD: u64 = 16 * 1024 * 1024;

/// Wraps an encoded IM request in an uplink frame (service 5, method 1, "pb").
pub fn im_frame(
    request: &[u8],
    sequence_id: i64,
    logid_ms: u64,
    headers: Vec<ExtendedEntry>,
) -> Frame {
    Frame {
        seqid: Some(sequence_id as u64),
        logid: Some(logid_ms),
        service: Some(cmd::SERVICE_IM),
        method: Some(cmd::METHOD_IM),
        headers,
        payload_encoding: None,
        payload_type: Some("pb".into()),
        payload: Some(Blob(request.to_vec())),
        ..Frame::default()
    }
}

/// A repeated field encoded once and spliced into every message that carries the
/// same entries: the client's context headers (about 30 entries, 1.4 KB) go
/// unchanged into each request (field 15) and each frame (field 5), and building
/// and encoding them anew was most of the cost of encoding a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplicedField {
    number: u32,
    bytes: Vec<u8>,
}

impl SplicedField {
    /// `headers` as `Request.headers` (field 15).
    pub fn request_headers(headers: &[ExtendedEntry]) -> Self {
        let request = Request {
            headers: headers.to_vec(),
            ..Request::default()
        };
        Self {
            number: 15,
            bytes: request.encode_to_vec(),
        }
    }

    /// `headers` as `Frame.headers` (field 5).
    pub fn frame_headers(headers: &[ExtendedEntry]) -> Self {
        let frame = Frame {
            headers: headers.to_vec(),
            ..Frame::default()
        };
        Self {
            number: 5,
            bytes: frame.encode_to_vec(),
        }
    }

    /// `message` encoded with this field where the encoder puts it: after the
    /// fields numbered up to its own, before the first one above. With the
    /// message's own field of that number empty, the bytes are exactly those of
    /// the message with the entries in that field.
    pub fn encode_into<M: Message>(&self, message: &M) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.bytes.len());
        message.encode_raw(&mut out);
        let at = first_field_above(&out, self.number);
        out.splice(at..at, self.bytes.iter().copied());
        out
    }
}

/// The offset of the first top-level field numbered above `number` in `bytes`
/// (our own encoding, so well formed), or the end.
fn first_field_above(bytes: &[u8], number: u32) -> usize {
    let mut r = Reader::new(bytes);
    loop {
        let at = bytes.len() - r.remaining();
        match r.key() {
            Ok((n, _)) if n > number => return at,
            Ok((_, wire)) => {
                if r.skip(wire).is_err() {
                    return bytes.len();
                }
            }
            Err(_) => return bytes.len(),
        }
    }
}

/// A frame's payload, inflated when `payload_encoding` is `gzip`.
///
/// # Errors
/// Corrupt gzip, an inflated size over [`MAX_INFLATED_PAYLOAD`], or an encoding
/// this crate cannot read (`__lz4`).
pub fn frame_payload(frame: &Frame) -> Result<Vec<u8>, DecodeError> {
    let raw = frame.payload.as_deref().unwrap_or_default();
    match frame.payload_encoding.as_deref() {
        None | Some("") => Ok(raw.to_vec()),
        Some("gzip") => gunzip(raw),
        Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Inflates gzip data (RFC 1952, first member), refusing output over
/// [`MAX_INFLATED_PAYLOAD`] and checking the CRC-32 and length trailer.
///
/// # Errors
/// Corrupt, truncated or oversized data.
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    crate::gzip::gunzip(data)
}

/// Compresses `data` with gzip (as the server does for pushes).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    crate::gzip::gzip(data)
}

/// Decodes a frame's payload as an IM [`Response`].
///
/// # Errors
/// As [`frame_payload`] and [`Message::decode`].
pub fn frame_response(frame: &Frame) -> Result<Response, DecodeError> {
    Response::decode(&frame_payload(frame)?)
}

/// The device and browser context the web client sends with every request (in
/// `Request.headers` and in frame headers), in the SDK's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebContext {
    /// The web device id.
    pub device_id: DeviceId,
    /// `region` / `priority_region`.
    pub region: String,
    /// The browser User-Agent.
    pub user_agent: String,
    /// `browser_language`.
    pub language: String,
    /// `tz_name`.
    pub tz_name: String,
    /// `verifyFp`, when known (from the `s_v_web_id` cookie).
    pub verify_fp: Option<String>,
    /// `Web-Sdk-Ms-Token`, when known (the `msToken` cookie).
    pub ms_token: Option<String>,
}

impl WebContext {
    /// The header list of PROTOCOL.md 1.7 step 3, in that order.
    pub fn headers(&self) -> Vec<ExtendedEntry> {
        let browser_version = self
            .user_agent
            .strip_prefix("Mozilla/")
            .unwrap_or(&self.user_agent);
        let app_language = self.language.split('-').next().unwrap_or("en").to_owned();
        let mut h = vec![
            ExtendedEntry::new("aid", cmd::WEB_AID.to_string()),
            ExtendedEntry::new("app_name", "tiktok_web"),
            ExtendedEntry::new("channel", "web"),
            ExtendedEntry::new("device_platform", "web_pc"),
            ExtendedEntry::new("device_id", self.device_id.as_str()),
            ExtendedEntry::new("region", &self.region),
            ExtendedEntry::new("priority_region", &self.region),
            ExtendedEntry::new("os", "windows"),
            ExtendedEntry::new("referer", "https://www.tiktok.com/messages"),
            ExtendedEntry::new("root_referer", "https://www.tiktok.com/messages"),
            ExtendedEntry::new("cookie_enabled", "true"),
            ExtendedEntry::new("screen_width", "1920"),
            ExtendedEntry::new("screen_height", "1080"),
            ExtendedEntry::new("browser_language", &self.language),
            ExtendedEntry::new("browser_platform", "Win32"),
            ExtendedEntry::new("browser_name", "Mozilla"),
            ExtendedEntry::new("browser_version", browser_version),
            ExtendedEntry::new("browser_online", "true"),
        ];
        if let Some(fp) = &self.verify_fp {
            h.push(ExtendedEntry::new("verifyFp", fp));
        }
        h.extend([
            ExtendedEntry::new("app_language", &app_language),
            ExtendedEntry::new("webcast_language", &app_language),
            ExtendedEntry::new("tz_name", &self.tz_name),
            ExtendedEntry::new("is_page_visible", "true"),
            ExtendedEntry::new("focus_state", "true"),
            ExtendedEntry::new("is_fullscreen", "false"),
            ExtendedEntry::new("history_len", "2"),
            ExtendedEntry::new("user_is_login", "true"),
            ExtendedEntry::new("data_collection_enabled", "true"),
            ExtendedEntry::new("from_appID", cmd::WEB_AID.to_string()),
            ExtendedEntry::new("locale", &app_language),
            ExtendedEntry::new("user_agent", &self.user_agent),
        ]);
        if let Some(token) = &self.ms_token {
            h.push(ExtendedEntry::new("Web-Sdk-Ms-Token", token));
        }
        h
    }
}

/// The SDK version and build the client claims to be (from the 2026 US capture).
pub const SDK_VERSION: &str = "1.7.0";
/// See [`SDK_VERSION`].
pub const BUILD_NUMBER: &str = "3035f17:feat/call-trace-plugin";

/// Everything that goes into one text send.
#[derive(Clone, Debug)]
pub struct SendParams<'a> {
    /// Target conversation.
    pub conversation_id: &'a ConversationId,
    /// Its short id.
    pub conversation_short_id: ConversationShortId,
    /// The conversation's inbox type (0 unless known).
    pub inbox_type: i32,
    /// Content JSON.
    pub content: &'a str,
    /// `message_type` (7 for text).
    pub message_type: i32,
    /// Fixed at acceptance; reused by retransmissions.
    pub client_message_id: &'a ClientMessageId,
    /// The request's sequence id.
    pub sequence_id: i64,
    /// Context headers.
    pub context_headers: Vec<ExtendedEntry>,
    /// The device id.
    pub device_id: &'a DeviceId,
}

/// Builds the cmd-100 request exactly as TikTok web does (PROTOCOL.md 7).
pub fn send_message_request(p: SendParams<'_>) -> Request {
    let body = SendMessageRequestBody {
        conversation_id: Some(p.conversation_id.as_str().into()),
        conversation_type: Some(1),
        conversation_short_id: Some(p.conversation_short_id.get()),
        content: Some(p.content.into()),
        ext: vec![
            ExtendedEntry::new("s:mentioned_users", ""),
            ExtendedEntry::new("s:client_message_id", p.client_message_id.as_str()),
        ],
        message_type: Some(p.message_type),
        ticket: Some("deprecated".into()),
        client_message_id: Some(p.client_message_id.as_str().into()),
        ..SendMessageRequestBody::default()
    };
    let body = RequestBody {
        send_message_body: Some(body),
        ..RequestBody::default()
    };
    im_request(
        cmd::SEND_MESSAGE,
        p.sequence_id,
        p.inbox_type,
        body,
        p.context_headers,
        p.device_id,
    )
}

/// Any IM request, with the envelope fields the web client sets (seen in live captures).
pub fn im_request(
    command: i32,
    sequence_id: i64,
    inbox_type: i32,
    body: RequestBody,
    context_headers: Vec<ExtendedEntry>,
    device_id: &DeviceId,
) -> Request {
    Request {
        cmd: Some(command),
        sequence_id: Some(sequence_id),
        sdk_version: Some(SDK_VERSION.into()),
        token: Some(Default::default()),
        refer: Some(3),
        inbox_type: Some(inbox_type),
        build_number: Some(BUILD_NUMBER.into()),
        body: Some(body),
        device_id: Some(device_id.as_str().into()),
        device_platform: Some("web".into()),
        headers: context_headers,
        auth_type: Some(1),
        ..Request::default()
    }
}
