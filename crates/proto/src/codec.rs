//! Frame-level helpers: wrapping a request in a pbbp2 frame, reading a frame's
//! payload (decompressing `__lz4` and gzip), and building the requests the web
//! client sends.

use crate::cmd;
use crate::content::{MESSAGE_TYPE_PRIVATE_IMAGE, SCENE_PRIVATE_IMAGE};
use crate::error::DecodeError;
use crate::ids::{ClientMessageId, ConversationId, ConversationShortId, DeviceId};
use crate::schema::{
    DisplayTexts, ExtendedEntry, Frame, LocalizedText, MediaMetadata, MediaMetadataList, MediaSize,
    MessageContent, PrivateImageAsset, PrivateImageContent, Request, RequestBody, Response,
    SendMediaFileInfo, SendMediaRequest, SendMessageRequestBody,
};
use crate::wire::{Blob, Message, Reader};

/// Largest decompressed payload accepted from a gzip or LZ4 frame: a defence against
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
        self.splice_into(out)
    }

    /// Splices these entries into an already encoded message, after its last
    /// field of this number (so after entries spliced in before) and before
    /// the first field above.
    pub fn splice_into(&self, mut encoded: Vec<u8>) -> Vec<u8> {
        let at = first_field_above(&encoded, self.number);
        encoded.splice(at..at, self.bytes.iter().copied());
        encoded
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

/// The `payload_encoding` of a raw LZ4 block (PROTOCOL.md 10.2).
pub const ENCODING_LZ4: &str = "__lz4";
/// The `payload_encoding` of a gzip member (PROTOCOL.md 1.8).
pub const ENCODING_GZIP: &str = "gzip";

/// A frame's payload, decompressed by its `payload_encoding`: `__lz4` (one raw
/// LZ4 block, the fpid-9 socket's replies and pushes), `gzip`, or none.
///
/// # Errors
/// A corrupt block or member, an inflated size over [`MAX_INFLATED_PAYLOAD`],
/// or any other encoding.
pub fn frame_payload(frame: &Frame) -> Result<Vec<u8>, DecodeError> {
    let raw = frame.payload.as_deref().unwrap_or_default();
    match frame.payload_encoding.as_deref() {
        None | Some("") => Ok(raw.to_vec()),
        Some(ENCODING_GZIP) => gunzip(raw),
        Some(ENCODING_LZ4) => crate::lz4::decompress_block(raw),
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

/// Compresses `data` into one raw LZ4 block (as the server does on fpid 9).
pub fn lz4(data: &[u8]) -> Vec<u8> {
    crate::lz4::compress_block(data)
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

/// A committed private image: what its 1802 send names (PROTOCOL.md 10.3).
/// Its `Debug` leaves out the key, which opens the image.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateImage {
    /// The image's path: `Encryption.Uri` of the commit.
    pub path: String,
    /// The hex AES-256-GCM key: `Encryption.SecretKey` of the commit.
    pub decrypt_key: String,
    /// Width in pixels (from the image header).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the plain image in bytes.
    pub size: u64,
    /// File name, e.g. `image.png`.
    pub file_name: String,
}

impl std::fmt::Debug for PrivateImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateImage")
            .field("path", &self.path)
            .field("decrypt_key", &"<redacted>")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("size", &self.size)
            .field("file_name", &self.file_name)
            .finish()
    }
}

/// The `private_image` preview texts TikTok web sends, in its order.
pub const PRIVATE_IMAGE_PREVIEWS: [&str; 3] = ["You sent a 📷", "sent a 📷", "[Photo]"];

/// Builds the cmd-100 request of a `private_image` (1802) message: the text
/// envelope of [`send_message_request`] with `content` empty, `scene`,
/// `content_pb` and `send_media_list` as PROTOCOL.md 10.3 lists them.
/// `p.content` and `p.message_type` are ignored.
pub fn private_image_request(p: SendParams<'_>, image: &PrivateImage) -> Request {
    let mut request = send_message_request(SendParams {
        content: "",
        message_type: MESSAGE_TYPE_PRIVATE_IMAGE,
        ..p
    });
    if let Some(body) = request
        .body
        .as_mut()
        .and_then(|b| b.send_message_body.as_mut())
    {
        body.content_pb = Some(MessageContent {
            private_image: Some(private_image_content(image)),
            ..MessageContent::default()
        });
        body.scene = Some(SCENE_PRIVATE_IMAGE.into());
        body.send_media_list = vec![private_image_media(image)];
    }
    request
}

/// The `content_pb.private_image` of a send: the one asset, the preview
/// texts and the asset's metadata.
fn private_image_content(image: &PrivateImage) -> PrivateImageContent {
    PrivateImageContent {
        assets: vec![PrivateImageAsset {
            path: Some(image.path.as_str().into()),
            size: Some(MediaSize {
                width: Some(i64::from(image.width)),
                height: Some(i64::from(image.height)),
                ..MediaSize::default()
            }),
            decrypt_key: Some(image.decrypt_key.as_str().into()),
            reserved_7: Some(0),
            ..PrivateImageAsset::default()
        }],
        display_texts: Some(private_image_previews()),
        metadata: Some(private_image_metadata(image)),
        ..PrivateImageContent::default()
    }
}

/// The [`PRIVATE_IMAGE_PREVIEWS`] as the sender's, the recipient's and the
/// bracketed preview.
fn private_image_previews() -> DisplayTexts {
    let text = |t: &str| {
        Some(LocalizedText {
            text: Some(t.into()),
            ..LocalizedText::default()
        })
    };
    let [sender, recipient, bracketed] = PRIVATE_IMAGE_PREVIEWS;
    DisplayTexts {
        sender_preview: text(sender),
        recipient_preview: text(recipient),
        bracketed_preview: text(bracketed),
        ..DisplayTexts::default()
    }
}

/// The asset's metadata entry: its size, key and the preview markers TikTok
/// web sends.
fn private_image_metadata(image: &PrivateImage) -> MediaMetadataList {
    MediaMetadataList {
        entries: vec![MediaMetadata {
            path: Some(image.path.as_str().into()),
            properties: vec![
                ExtendedEntry::new("image_width", image.width.to_string()),
                ExtendedEntry::new("image_height", image.height.to_string()),
                ExtendedEntry::new("decrypt_key", image.decrypt_key.as_str()),
                ExtendedEntry::new("quote_preview", "dm_cam_preview_photo"),
                ExtendedEntry::new("sender_preview", "sender_preview"),
            ],
            ..MediaMetadata::default()
        }],
        ..MediaMetadataList::default()
    }
}

/// The one `send_media_list` entry: the same path and key as the asset, with
/// the image's size and file name.
fn private_image_media(image: &PrivateImage) -> SendMediaRequest {
    SendMediaRequest {
        media_kind: Some(1),
        path: Some(image.path.as_str().into()),
        decrypt_key: Some(image.decrypt_key.as_str().into()),
        file_info: Some(SendMediaFileInfo {
            width: Some(i64::from(image.width)),
            height: Some(i64::from(image.height)),
            size: Some(i64::try_from(image.size).unwrap_or(i64::MAX)),
            file_name: Some(image.file_name.as_str().into()),
            ..SendMediaFileInfo::default()
        }),
        ..SendMediaRequest::default()
    }
}

/// The cmd-2059 request: the upload credentials of private media (body field
/// 2059 is the empty string).
pub fn media_upload_config_request(sequence_id: i64, device_id: &DeviceId) -> Request {
    let body = RequestBody {
        media_upload_config_body: Some(Default::default()),
        ..RequestBody::default()
    };
    im_request(
        cmd::MEDIA_UPLOAD_CONFIG,
        sequence_id,
        0,
        body,
        Vec::new(),
        device_id,
    )
}

/// The ticket-guard keys TikTok web adds to `Request.headers` on an HTTP send,
/// after the context headers (live capture; PROTOCOL.md 2.1 and 10.1).
pub const TICKET_GUARD_KEYS: [&str; 5] = [
    "tt-ticket-guard-public-key",
    "tt-ticket-guard-client-data",
    "tt-ticket-guard-version",
    "tt-ticket-guard-iteration-version",
    "tt-ticket-guard-web-version",
];

/// The five ticket-guard entries for `public_key` (standard base64 of the
/// 65-byte uncompressed P-256 point), with the client data empty as the
/// working open-source client sends it.
pub fn ticket_guard_headers(public_key: &str) -> Vec<ExtendedEntry> {
    let [key, data, version, iteration, web] = TICKET_GUARD_KEYS;
    vec![
        ExtendedEntry::new(key, public_key),
        ExtendedEntry::new(data, ""),
        ExtendedEntry::new(version, "2"),
        ExtendedEntry::new(iteration, "0"),
        ExtendedEntry::new(web, "1"),
    ]
}
