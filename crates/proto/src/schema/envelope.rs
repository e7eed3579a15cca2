//! The IM `Request` / `Response` envelope and its per-cmd bodies (PROTOCOL.md 2.1-2.3).

use super::conversation::*;
use super::frame::ExtendedEntry;
use super::media::*;
use super::send::*;
use crate::wire::{Int32, Int64, Msg, Str};

message! {
    /// One IM request, over WS (inside a [`Frame`](super::Frame)) or as an HTTP body.
    pub struct Request {
        /// The IMCMD; the body field with the same number carries the payload.
        1 => cmd: optional Int32,
        /// Starts at 10001 per page; a retransmission reuses it.
        2 => sequence_id: optional Int64,
        /// e.g. "1.7.0".
        3 => sdk_version: optional Str,
        /// Empty on TikTok web (cookie auth) but present.
        4 => token: optional Str,
        /// 3 = PC.
        5 => refer: optional Int32,
        /// The conversation's inbox type (0 or 3 seen).
        6 => inbox_type: optional Int32,
        /// `<git sha>:<branch>`.
        7 => build_number: optional Str,
        /// The per-cmd body.
        8 => body: optional Msg<RequestBody>,
        /// The web device id ("wid") as a decimal string.
        9 => device_id: optional Str,
        /// Not set on TikTok web.
        10 => channel: optional Str,
        /// "web".
        11 => device_platform: optional Str,
        /// Not set on TikTok web.
        12 => device_type: optional Str,
        /// Not set on TikTok web.
        13 => os_version: optional Str,
        /// Not set on TikTok web.
        14 => version_code: optional Str,
        /// The device/browser context map, in the SDK's order.
        15 => headers: repeated Msg<ExtendedEntry>,
        /// Not set on TikTok web.
        16 => config_id: optional Int32,
        /// Not set on TikTok web.
        17 => token_info: optional Msg<TokenInfo>,
        /// 1 = SESSION_AUTH on TikTok web.
        18 => auth_type: optional Int32,
        /// Not set on TikTok web.
        19 => msg_trace: optional Msg<MsgTrace>,
        /// Not set on TikTok web.
        20 => retry_count: optional Int32,
        /// Douyin: "douyin_web".
        21 => biz: optional Str,
        /// Douyin: "web_sdk".
        22 => access: optional Str,
        /// Douyin CERT_AUTH only.
        23 => ts_sign: optional Str,
        /// Douyin CERT_AUTH only.
        24 => sdk_cert: optional Str,
        /// Douyin CERT_AUTH only.
        25 => request_sign: optional Str,
    }
}

message! {
    /// One IM response: a reply (same `sequence_id` as the request) or a push
    /// (`sequence_id` absent or 0).
    pub struct Response {
        /// Echo of the request's cmd; absent on gateway rejections.
        1 => cmd: optional Int32,
        /// Echo of the request's sequence id; 0/absent on pushes.
        2 => sequence_id: optional Int64,
        /// 0 = OK; see [`crate::status::StatusCode`].
        3 => status_code: optional Int32,
        /// "OK", or a description.
        4 => error_desc: optional Str,
        /// Echo of the inbox type.
        5 => inbox_type: optional Int32,
        /// The per-cmd body.
        6 => body: optional Msg<ResponseBody>,
        /// `yyyyMMddHHmmss` + 20 upper-case hex chars.
        7 => log_id: optional Str,
        /// Response headers.
        8 => headers: repeated Msg<ExtendedEntry>,
        /// Set on pushes that want a client ack.
        9 => start_time_stamp: optional Int64,
        /// Unix ms.
        10 => request_arrived_time: optional Int64,
        /// Unix ms.
        11 => server_execution_end_time: optional Int64,
        /// Retry count.
        12 => retry_count: optional Int32,
        /// Name from newer Android classes; the number is inferred.
        13 => server_start_time: optional Int64,
        /// Serving region such as "US-TTP" (live; real name unknown).
        14 => server_region: optional Str,
        /// The requesting user's own uid (live; real name unknown).
        15 => own_user_id: optional Int64,
    }
}

message! {
    /// Request bodies: the field number is the cmd.
    pub struct RequestBody {
        /// cmd 100 SEND_MESSAGE.
        100 => send_message_body: optional Msg<SendMessageRequestBody>,
        /// cmd 200 GET_MESSAGES_BY_USER.
        200 => messages_per_user_body: optional Msg<MessagesPerUserRequestBody>,
        /// cmd 203 GET_MESSAGES_BY_USER_INIT_V2.
        203 => messages_per_user_init_v2_body: optional Msg<MessagesPerUserInitV2RequestBody>,
        /// cmd 301 GET_MESSAGES_BY_CONVERSATION (history).
        301 => messages_in_conversation_body: optional Msg<MessagesInConversationRequestBody>,
        /// cmd 608 GET_CONVERSATION_INFO_V2.
        608 => get_conversation_info_v2_body: optional Msg<GetConversationInfoV2RequestBody>,
        /// cmd 609 CREATE_CONVERSATION_V2.
        609 => create_conversation_v2_body: optional Msg<CreateConversationV2RequestBody>,
        /// cmd 610 GET_CONVERSATION_INFO_LIST_V2.
        610 => get_conversation_info_list_v2_body: optional Msg<GetConversationInfoListV2RequestBody>,
        /// cmd 2003 GET_MEDIA_UPLOAD_TOKEN.
        2003 => get_upload_token_body: optional Msg<GetUploadTokenRequestBody>,
        /// cmd 2005 GET_TICKET.
        2005 => get_ticket_body: optional Msg<GetTicketRequestBody>,
        /// cmd 2010 CLIENT_ACK.
        2010 => client_ack_body: optional Msg<ClientAckRequestBody>,
        /// cmd 2059 MEDIA_UPLOAD_CONFIG: the empty string.
        2059 => media_upload_config_body: optional Str,
    }
}

message! {
    /// Response bodies: the field number is the cmd.
    pub struct ResponseBody {
        /// cmd 100 SEND_MESSAGE.
        100 => send_message_body: optional Msg<SendMessageResponseBody>,
        /// cmd 200 GET_MESSAGES_BY_USER.
        200 => messages_per_user_body: optional Msg<MessagesPerUserResponseBody>,
        /// cmd 203 GET_MESSAGES_BY_USER_INIT_V2.
        203 => messages_per_user_init_v2_body: optional Msg<MessagesPerUserInitV2ResponseBody>,
        /// cmd 301 GET_MESSAGES_BY_CONVERSATION (history).
        301 => messages_in_conversation_body: optional Msg<MessagesInConversationResponseBody>,
        /// cmd 500 NEW_MSG_NOTIFY (push). Repeated: one entry per delivered message.
        500 => has_new_message_notify: repeated Msg<NewMessageNotify>,
        /// cmd 501 read receipt (push). Its shape is not public: read as
        /// NewMessageNotify-shaped, like 500 (inferred, docs/inferred-behaviour.md).
        501 => read_notify: repeated Msg<NewMessageNotify>,
        /// cmd 510 typing (push). Shape not public: NewMessageNotify-shaped (inferred).
        510 => typing_notify: repeated Msg<NewMessageNotify>,
        /// cmd 608 GET_CONVERSATION_INFO_V2.
        608 => get_conversation_info_v2_body: optional Msg<GetConversationInfoV2ResponseBody>,
        /// cmd 609 CREATE_CONVERSATION_V2.
        609 => create_conversation_v2_body: optional Msg<CreateConversationV2ResponseBody>,
        /// cmd 610 GET_CONVERSATION_INFO_LIST_V2.
        610 => get_conversation_info_list_v2_body: optional Msg<GetConversationInfoListV2ResponseBody>,
        /// cmd 705 property change (push; reactions).
        705 => property_update_notify: optional Msg<PropertyUpdateNotify>,
        /// cmd 2003 GET_MEDIA_UPLOAD_TOKEN.
        2003 => get_upload_token_body: optional Msg<GetUploadTokenResponseBody>,
        /// cmd 2005 GET_TICKET.
        2005 => get_ticket_body: optional Msg<GetTicketResponseBody>,
        /// cmd 2059 MEDIA_UPLOAD_CONFIG.
        2059 => media_upload_config_body: optional Msg<MediaUploadConfigResponseBody>,
    }
}

message! {
    /// Token metadata (not used by TikTok web).
    pub struct TokenInfo {
        /// Mark id.
        1 => mark_id: optional Int32,
        /// TokenType.
        2 => r#type: optional Int32,
        /// App id.
        3 => app_id: optional Int32,
        /// User id.
        4 => user_id: optional Int64,
        /// Timestamp.
        5 => timestamp: optional Int64,
    }
}

message! {
    /// Message trace metrics.
    pub struct MsgTrace {
        /// `map<int32,int64>`, as ordered entries.
        1 => metrics: repeated Msg<MsgTraceMetric>,
        /// MsgTracePath.
        2 => path: optional Int32,
    }
}

message! {
    /// One entry of [`MsgTrace::metrics`].
    pub struct MsgTraceMetric {
        /// Metric key.
        1 => key: optional Int32,
        /// Metric value.
        2 => value: optional Int64,
    }
}
