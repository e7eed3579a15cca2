//! Conversations, inbox init, tickets, acks and upload tokens (PROTOCOL.md 2.5).

use super::frame::ExtendedEntry;
use super::send::MessageBody;
use crate::wire::{Bool, Int32, Int64, Msg, Str};

message! {
    /// A conversation as the server describes it.
    pub struct ConversationInfoV2 {
        /// Conversation id.
        1 => conversation_id: optional Str,
        /// Short id.
        2 => conversation_short_id: optional Int64,
        /// Type.
        3 => conversation_type: optional Int32,
        /// Ticket.
        4 => ticket: optional Str,
        /// First page of participants.
        6 => first_page_participants: optional Msg<ParticipantsPage>,
        /// Participant count.
        7 => participants_count: optional Int32,
        /// Whether the requester participates.
        8 => is_participant: optional Bool,
        /// Inbox type. (50, 51 core/setting info: no recovered schema, unknown.)
        9 => inbox_type: optional Int32,
        /// Badge count.
        10 => badge_count: optional Int32,
        /// The requester as a participant.
        20 => user_info: optional Msg<Participant>,
    }
}

message! {
    /// A page of participants.
    pub struct ParticipantsPage {
        /// Participants.
        1 => participants: repeated Msg<Participant>,
        /// More pages.
        2 => has_more: optional Bool,
        /// Cursor.
        3 => cursor: optional Int64,
    }
}

message! {
    /// One conversation participant.
    pub struct Participant {
        /// Uid.
        1 => user_id: optional Int64,
        /// Sort order.
        2 => sort_order: optional Int64,
        /// Role.
        3 => role: optional Int32,
        /// Alias.
        4 => alias: optional Str,
        /// Sec uid.
        5 => sec_uid: optional Str,
        /// BlockStatus.
        6 => blocked: optional Int32,
        /// Left block time.
        7 => left_block_time: optional Int64,
        /// Ext map.
        8 => ext: repeated Msg<ExtendedEntry>,
    }
}

message! {
    /// cmd 608 request body, and the element of the cmd 610 list.
    pub struct GetConversationInfoV2RequestBody {
        /// Conversation id.
        1 => conversation_id: optional Str,
        /// Short id.
        2 => conversation_short_id: optional Int64,
        /// Type.
        3 => conversation_type: optional Int32,
    }
}

message! {
    /// cmd 608 response body.
    pub struct GetConversationInfoV2ResponseBody {
        /// The conversation.
        1 => conversation_info: optional Msg<ConversationInfoV2>,
    }
}

message! {
    /// cmd 610 request body.
    pub struct GetConversationInfoListV2RequestBody {
        /// Conversations asked for.
        1 => conversation_info_list: repeated Msg<GetConversationInfoV2RequestBody>,
    }
}

message! {
    /// cmd 610 response body.
    pub struct GetConversationInfoListV2ResponseBody {
        /// Conversations found.
        1 => conversation_info_list: repeated Msg<ConversationInfoV2>,
    }
}

message! {
    /// cmd 609 request body.
    pub struct CreateConversationV2RequestBody {
        /// Type.
        1 => conversation_type: optional Int32,
        /// Participant uids.
        2 => participants: repeated Int64,
        /// Persistent.
        3 => persistent: optional Bool,
        /// Idempotent id.
        4 => idempotent_id: optional Str,
        /// Name.
        6 => name: optional Str,
        /// Avatar URL.
        7 => avatar_url: optional Str,
        /// Description.
        8 => description: optional Str,
        /// Biz ext map.
        11 => biz_ext: repeated Msg<ExtendedEntry>,
    }
}

message! {
    /// cmd 609 response body.
    pub struct CreateConversationV2ResponseBody {
        /// The (possibly existing) conversation.
        1 => conversation: optional Msg<ConversationInfoV2>,
        /// Check code.
        2 => check_code: optional Int64,
        /// Check message.
        3 => check_message: optional Str,
        /// Extra info.
        4 => extra_info: optional Str,
        /// 0 = ok.
        5 => status: optional Int32,
    }
}

message! {
    /// cmd 2005 request body.
    pub struct GetTicketRequestBody {
        /// 3 = WEB.
        1 => ticket_type: optional Int32,
        /// Conversation type.
        2 => conversation_type: optional Int32,
        /// Peer uid (1:1) or short id (groups).
        4 => to_id: optional Int64,
        /// Short id.
        5 => conversation_short_id: optional Int64,
        /// Custom conversation type.
        6 => customed_conversation_type: optional Int32,
        /// Ext map.
        10 => ext: repeated Msg<ExtendedEntry>,
    }
}

message! {
    /// cmd 2005 response body.
    pub struct GetTicketResponseBody {
        /// The ticket.
        1 => ticket: optional Str,
    }
}

message! {
    /// cmd 203 request body.
    pub struct MessagesPerUserInitV2RequestBody {
        /// Cursor (written even when 0).
        1 => cursor: optional Int64,
        /// New user.
        2 => new_user: optional Int32,
        /// Init sub type.
        3 => init_sub_type: optional Int32,
        /// Web only.
        4 => with_empty_conv: optional Bool,
        /// Web only.
        5 => siderank_keys: repeated Str,
    }
}

message! {
    /// cmd 203 response body.
    pub struct MessagesPerUserInitV2ResponseBody {
        /// Messages.
        1 => messages: repeated Msg<MessageBody>,
        /// Conversations.
        2 => conversations: repeated Msg<ConversationInfoV2>,
        /// Per-user cursor.
        3 => per_user_cursor: optional Int64,
        /// Next cursor.
        4 => next_cursor: optional Int64,
        /// More pages.
        5 => has_more: optional Bool,
        /// Init type.
        6 => init_type: optional Int32,
        /// Cmd start index.
        7 => cmd_start_index: optional Int64,
        /// Next conversation version. (9 `messages_pb`, 11: unknown.)
        8 => next_conversation_version: optional Int64,
    }
}

message! {
    /// cmd 200 request body.
    pub struct MessagesPerUserRequestBody {
        /// Cursor.
        1 => cursor: optional Int64,
        /// Limit.
        2 => limit: optional Int32,
        /// Interval.
        3 => interval: optional Int64,
        /// New user.
        4 => new_user: optional Int32,
    }
}

message! {
    /// cmd 200 response body.
    pub struct MessagesPerUserResponseBody {
        /// Messages.
        1 => messages: repeated Msg<MessageBody>,
        /// Next cursor.
        2 => next_cursor: optional Int64,
        /// More pages.
        3 => has_more: optional Bool,
        /// Next interval.
        4 => next_interval: optional Int64,
        /// Next conversation version. (6 badge counts: unknown.)
        5 => next_conversation_version: optional Int64,
        /// Next cmd index.
        7 => next_cmd_index: optional Int64,
    }
}

message! {
    /// cmd 2010 request body.
    pub struct ClientAckRequestBody {
        /// Start time stamp.
        1 => start_time_stamp: optional Int64,
        /// Acked cmd.
        2 => cmd: optional Int32,
        /// Network type.
        3 => network_type: optional Int32,
        /// Log id.
        4 => logid: optional Str,
        /// Client time stamp.
        5 => client_time_stamp: optional Int64,
        /// Server message id.
        6 => server_message_id: optional Int64,
        /// MsgReportType.
        7 => r#type: optional Int32,
    }
}

message! {
    /// cmd 2003 request body.
    pub struct GetUploadTokenRequestBody {
        /// VSDK version.
        1 => vsdk_version: optional Str,
        /// MediaTokenType.
        2 => token_type: optional Int32,
    }
}

message! {
    /// cmd 2003 response body: STS-style upload credentials.
    pub struct GetUploadTokenResponseBody {
        /// Access key id.
        1 => access_key: optional Str,
        /// Upload hosts.
        2 => hosts: repeated Str,
        /// Session token.
        3 => token: optional Str,
        /// MediaTokenType.
        4 => token_type: optional Int32,
        /// Secret access key.
        5 => secret_access_key: optional Str,
        /// VOD space name.
        6 => space_name: optional Str,
        /// ImageX service id.
        7 => service_id: optional Str,
        /// Expiry.
        8 => expire_time: optional Str,
        /// Server time.
        9 => current_time: optional Str,
    }
}
