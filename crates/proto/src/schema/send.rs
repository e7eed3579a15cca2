//! Sending messages and the new-message push (PROTOCOL.md 2.4, 2.5).

use super::conversation::ConversationInfoV2;
use super::envelope::MsgTrace;
use super::frame::ExtendedEntry;
use super::media::{MediaInfo, MessageContent, SendMediaRequest};
use crate::wire::{Bool, Bytes, Int32, Int64, Msg, Str};

message! {
    /// cmd 100 body: one message into one conversation.
    pub struct SendMessageRequestBody {
        /// `0:1:<low uid>:<high uid>` for 1:1.
        1 => conversation_id: optional Str,
        /// 1 = one-to-one.
        2 => conversation_type: optional Int32,
        /// Server-issued short id.
        3 => conversation_short_id: optional Int64,
        /// Content JSON, e.g. `{"aweType":0,"text":"hi"}`.
        4 => content: optional Str,
        /// `s:mentioned_users`, `s:client_message_id`, in that order.
        5 => ext: repeated Msg<ExtendedEntry>,
        /// 7 = text on TikTok web.
        6 => message_type: optional Int32,
        /// The literal "deprecated" on TikTok web.
        7 => ticket: optional Str,
        /// UUID v4; also in ext `s:client_message_id`.
        8 => client_message_id: optional Str,
        /// Group mentions.
        9 => mentioned_users: repeated Int64,
        /// Ignore badge count.
        10 => ignore_badge_count: optional Bool,
        /// Reply / quote.
        11 => ref_msg_info: optional Msg<ReferencedMessageInfo>,
        /// Client ext map.
        12 => client_ext: repeated Msg<ExtendedEntry>,
        /// Web only: typed content (`private_image` for 1802).
        13 => content_pb: optional Msg<MessageContent>,
        /// Web only: `"private_image"` for 1802.
        14 => scene: optional Str,
        /// Web only.
        15 => visible_users: repeated Int64,
        /// Web only.
        16 => invisible_users: repeated Int64,
        /// Web only: the attached files of a media message.
        17 => send_media_list: repeated Msg<SendMediaRequest>,
        /// Web only.
        18 => biz_transient_extra: optional Bytes,
        /// Web only.
        19 => biz_persistent_extra: optional Bytes,
    }
}

message! {
    /// cmd 100 response body.
    pub struct SendMessageResponseBody {
        /// Assigned even when `status` is not 0.
        1 => server_message_id: optional Int64,
        /// Shown by the SDK as the status message.
        2 => extra_info: optional Str,
        /// SendMessageStatus; 0 = success.
        3 => status: optional Int32,
        /// Echo of the request's client message id.
        4 => client_message_id: optional Str,
        /// Moderation / limit class.
        5 => check_code: optional Int64,
        /// JSON with `status_code`, tips, ...
        6 => check_message: optional Str,
        /// Filtered content.
        7 => filtered_content: optional Str,
        /// Async send flag.
        8 => is_async_send: optional Bool,
        /// A new ticket.
        9 => new_ticket: optional Str,
        /// The conversation.
        10 => conversation: optional Msg<ConversationInfoV2>,
        /// Web only: 1 Normal, 2 StrangerMessageRequest, 3 StrangerFiltered.
        12 => inbox_page_category: optional Int32,
        /// Web only: 1 Risk, 2 Keyword.
        13 => filter_reason: optional Int32,
    }
}

message! {
    /// Android reply/quote reference (SendMessageRequestBody 11).
    pub struct ReferencedMessageInfo {
        /// Referenced message.
        1 => referenced_message_id: optional Int64,
        /// Hint text.
        2 => hint: optional Str,
        /// Root message.
        3 => root_message_id: optional Int64,
        /// Root index.
        4 => root_message_conv_index: optional Int64,
    }
}

message! {
    /// Web reply/quote reference.
    pub struct ReferenceInfo {
        /// Referenced message.
        1 => referenced_message_id: optional Int64,
        /// Hint text.
        2 => hint: optional Str,
        /// Referenced message type.
        3 => ref_message_type: optional Int64,
        /// Referenced message status.
        4 => referenced_message_status: optional Int32,
        /// Root message.
        5 => root_message_id: optional Int64,
        /// Root index.
        6 => root_message_conv_index: optional Int64,
    }
}

message! {
    /// One stored message, as pushed and as listed.
    pub struct MessageBody {
        /// Conversation id.
        1 => conversation_id: optional Str,
        /// Conversation type.
        2 => conversation_type: optional Int32,
        /// Server message id.
        3 => server_message_id: optional Int64,
        /// Microsecond-like index.
        4 => index_in_conversation: optional Int64,
        /// Short id.
        5 => conversation_short_id: optional Int64,
        /// Message type.
        6 => message_type: optional Int32,
        /// Sender uid.
        7 => sender: optional Int64,
        /// Content JSON.
        8 => content: optional Str,
        /// Ext map.
        9 => ext: repeated Msg<ExtendedEntry>,
        /// Create time (ms).
        10 => create_time: optional Int64,
        /// Version.
        11 => version: optional Int64,
        /// Status.
        12 => status: optional Int32,
        /// Order.
        13 => order_in_conversation: optional Int64,
        /// Sender sec uid. (15 `property_list` has no recovered schema: unknown.)
        14 => sec_sender: optional Str,
        /// User profile map.
        16 => user_profile: repeated Msg<ExtendedEntry>,
        /// Index v2.
        17 => index_in_conversation_v2: optional Int64,
        /// Reply reference.
        18 => reference_info: optional Msg<ReferenceInfo>,
        /// Index v1.
        19 => index_in_conversation_v1: optional Int64,
        /// Web only.
        20 => content_pb: optional Bytes,
        /// Web only: `"private_image"`, `"private_video"`, `"sticker"`.
        21 => scene: optional Str,
        /// Web only: a received private image or video. (22, 23 and 26 have
        /// no recovered types: unknown.)
        24 => media_info_list: repeated Msg<MediaInfo>,
        /// Web only; named `pre_conversation_index` in the web bundle. The
        /// working open-source client reads it as the history cursor (uint64
        /// microseconds) it sends back as cmd 301's `anchor_index`.
        25 => pre_conversation_index: optional Int64,
    }
}

message! {
    /// cmd 500 push body.
    pub struct NewMessageNotify {
        /// Conversation id.
        2 => conversation_id: optional Str,
        /// Conversation type.
        3 => conversation_type: optional Int32,
        /// 1 PER_USER, 2 PER_CONVERSATION.
        4 => notify_type: optional Int32,
        /// The message.
        5 => message: optional Msg<MessageBody>,
        /// Previous cursor.
        6 => previous_cursor: optional Int64,
        /// Next cursor.
        7 => next_cursor: optional Int64,
        /// Index.
        8 => index_in_conversation: optional Int64,
        /// Index v2.
        9 => index_in_conversation_v2: optional Int64,
        /// Conversation version.
        10 => conversation_version: optional Int64,
        /// Previous conversation version.
        11 => previous_conversation_version: optional Int64,
        /// Cmd message index.
        12 => cmd_message_index: optional Int64,
        /// Badge count.
        13 => badge_count: optional Int32,
        /// Trace.
        14 => trace: optional Msg<MsgTrace>,
        /// Reply reference.
        15 => ref_msg_info: optional Msg<ReferenceInfo>,
        /// Previous index.
        16 => previous_msg_index_in_conv: optional Int64,
        /// Read version.
        17 => readconv_version: optional Int64,
        /// Previous read version. (19 has no recovered schema: unknown.)
        18 => pre_readconv_version: optional Int64,
    }
}

message! {
    /// cmd 705 push body: a message's properties changed (reactions). The
    /// working open-source client reads these fields; the reaction itself is
    /// the JSON of the ext entry `s:property_modify` (PROTOCOL.md 10.2).
    pub struct PropertyUpdateNotify {
        /// Conversation id.
        1 => conversation_id: optional Str,
        /// Conversation type.
        2 => conversation_type: optional Int32,
        /// Content JSON (unused).
        5 => content: optional Str,
        /// Ext map; `s:property_modify` and `s:server_message_id`.
        6 => ext: repeated Msg<ExtendedEntry>,
    }
}
