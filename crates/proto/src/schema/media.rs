//! Private media as TikTok web sends it (PROTOCOL.md 10.3): the cmd 2059 upload
//! credentials, the `content_pb` and `send_media_list` of a `private_image`
//! (1802) send, and the media block of a received message. Field numbers come
//! from a working open-source web client ([oss] in PROTOCOL.md); names are ours
//! where it had none.

use super::frame::ExtendedEntry;
use crate::wire::{Bytes, Int32, Int64, Msg, Str};

message! {
    /// cmd 2059 response body (`v1/media/upload_config`).
    pub struct MediaUploadConfigResponseBody {
        /// One entry per upload kind.
        1 => configs: repeated Msg<MediaUploadConfig>,
    }
}

message! {
    /// One set of upload credentials from cmd 2059.
    pub struct MediaUploadConfig {
        /// 1 = ImageX image upload, 2 = VOD video upload.
        1 => upload_kind: optional Int32,
        /// ImageX `ServiceId`.
        2 => service_id: optional Str,
        /// Upload API host (a bare host name).
        3 => host: optional Str,
        /// When the credentials expire, Unix milliseconds.
        4 => expires_at_ms: optional Int64,
        /// When they were issued, Unix milliseconds.
        5 => issued_at_ms: optional Int64,
        /// SigV4 access key id.
        6 => access_key_id: optional Str,
        /// Sent as `x-amz-security-token`.
        7 => security_token: optional Str,
        /// SigV4 secret key.
        8 => secret_access_key: optional Str,
    }
}

message! {
    /// `SendMessageRequestBody.content_pb` (13) and `MessageBody.content_pb` (20):
    /// typed content, one field per kind.
    pub struct MessageContent {
        /// `private_image` (1802).
        4 => private_image: optional Msg<PrivateImageContent>,
    }
}

message! {
    /// The typed content of a `private_image` message.
    pub struct PrivateImageContent {
        /// The committed uploads (one per image).
        1 => assets: repeated Msg<PrivateImageAsset>,
        /// Preview texts for the sender, the recipient and lists.
        3 => display_texts: optional Msg<DisplayTexts>,
        /// Key/value metadata per asset.
        200 => metadata: optional Msg<MediaMetadataList>,
    }
}

message! {
    /// One committed, encrypted image.
    pub struct PrivateImageAsset {
        /// The image's path (`Encryption.Uri` of the commit).
        1 => path: optional Str,
        /// Its pixel size.
        5 => size: optional Msg<MediaSize>,
        /// Hex AES-256-GCM key (`Encryption.SecretKey`).
        6 => decrypt_key: optional Str,
        /// Always 0 in the working client; meaning unknown.
        7 => reserved_7: optional Int64,
    }
}

message! {
    /// A width and height in pixels.
    pub struct MediaSize {
        /// Width.
        1 => width: optional Int64,
        /// Height.
        2 => height: optional Int64,
    }
}

message! {
    /// A localized text.
    pub struct LocalizedText {
        /// The text.
        1 => text: optional Str,
    }
}

message! {
    /// Preview texts of a media message.
    pub struct DisplayTexts {
        /// Shown to the sender ("You sent a 📷").
        1 => sender_preview: optional Msg<LocalizedText>,
        /// Shown to the recipient ("sent a 📷").
        2 => recipient_preview: optional Msg<LocalizedText>,
        /// Shown in lists and quotes (`"[Photo]"`).
        3 => bracketed_preview: optional Msg<LocalizedText>,
    }
}

message! {
    /// Metadata of each asset.
    pub struct MediaMetadataList {
        /// One entry per asset.
        1 => entries: repeated Msg<MediaMetadata>,
    }
}

message! {
    /// Metadata of one asset.
    pub struct MediaMetadata {
        /// The asset's path.
        1 => path: optional Str,
        /// `image_width`, `image_height`, `decrypt_key`, `quote_preview`,
        /// `sender_preview`, in that order.
        2 => properties: repeated Msg<ExtendedEntry>,
    }
}

message! {
    /// `SendMessageRequestBody.send_media_list` (17): one per attached file.
    pub struct SendMediaRequest {
        /// 1 = image, 2 = video.
        1 => media_kind: optional Int32,
        /// The asset's path (a video's vid).
        2 => path: optional Str,
        /// Hex AES-256-GCM key (empty for video).
        3 => decrypt_key: optional Str,
        /// The file's description.
        10 => file_info: optional Msg<SendMediaFileInfo>,
    }
}

message! {
    /// The description of an attached file.
    pub struct SendMediaFileInfo {
        /// Width in pixels.
        1 => width: optional Int64,
        /// Height in pixels.
        2 => height: optional Int64,
        /// A video's duration in milliseconds.
        3 => duration_ms: optional Int64,
        /// Size in bytes.
        4 => size: optional Int64,
        /// File name, e.g. `image.png`.
        5 => file_name: optional Str,
        /// A video's codec, e.g. `h264`.
        6 => video_codec: optional Str,
    }
}

message! {
    /// `MessageBody.media_info_list` (24) on a received `private_image` or
    /// `private_video` message.
    pub struct MediaInfo {
        /// The asset's path.
        1 => path: optional Str,
        /// Meaning unknown.
        2 => reserved_2: optional Int64,
        /// Hex AES-256-GCM key of the blobs behind the URLs.
        3 => decrypt_key: optional Str,
        /// Downloadable variants.
        20 => variants: repeated Msg<MediaVariant>,
    }
}

message! {
    /// One downloadable variant of a received media message.
    pub struct MediaVariant {
        /// `full`, `view`, `play` or `cover` (sometimes an embedded message).
        1 => label: optional Bytes,
        /// URLs of the (encrypted) blob.
        2 => urls: repeated Str,
        /// JSON metadata on video variants.
        3 => metadata_json: optional Str,
        /// Width.
        20 => width: optional Int64,
        /// Height.
        21 => height: optional Int64,
        /// A video's duration.
        22 => duration_ms: optional Int64,
    }
}

message! {
    /// cmd 301 request body (`v1/message/get_by_conversation`): one page of a
    /// conversation's history.
    pub struct MessagesInConversationRequestBody {
        /// Conversation id.
        1 => conversation_id: optional Str,
        /// Conversation type (1).
        2 => conversation_type: optional Int32,
        /// Short id.
        3 => conversation_short_id: optional Int64,
        /// MessageDirection (the working client sends 1).
        4 => direction: optional Int32,
        /// Cursor (`index_in_conversation`, microseconds); 0 = newest page.
        5 => anchor_index: optional Int64,
        /// Page size.
        6 => limit: optional Int32,
    }
}

message! {
    /// cmd 301 response body.
    pub struct MessagesInConversationResponseBody {
        /// The page, newest first.
        1 => messages: repeated Msg<super::MessageBody>,
        /// Cursor of the next page.
        2 => next_cursor: optional Int64,
        /// Whether older messages remain.
        3 => has_more: optional crate::wire::Bool,
    }
}
