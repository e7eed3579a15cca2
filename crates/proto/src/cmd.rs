//! IM command numbers and the HTTP route table (PROTOCOL.md 2.6, 5.4).

/// cmd 100 SEND_MESSAGE.
pub const SEND_MESSAGE: i32 = 100;
/// cmd 200 GET_MESSAGES_BY_USER.
pub const GET_MESSAGES_BY_USER: i32 = 200;
/// cmd 203 GET_MESSAGES_BY_USER_INIT_V2.
pub const GET_MESSAGES_BY_USER_INIT_V2: i32 = 203;
/// cmd 301 GET_MESSAGES_BY_CONVERSATION (history of one conversation).
pub const GET_MESSAGES_BY_CONVERSATION: i32 = 301;
/// cmd 500 NEW_MSG_NOTIFY (push).
pub const NEW_MSG_NOTIFY: i32 = 500;
/// cmd 501 read receipt (push; shape inferred).
pub const READ_NOTIFY: i32 = 501;
/// cmd 510 typing (push; shape inferred).
pub const TYPING_NOTIFY: i32 = 510;
/// cmd 705 message property change (push; reactions).
pub const PROPERTY_UPDATE_NOTIFY: i32 = 705;
/// cmd 608 GET_CONVERSATION_INFO_V2.
pub const GET_CONVERSATION_INFO_V2: i32 = 608;
/// cmd 609 CREATE_CONVERSATION_V2.
pub const CREATE_CONVERSATION_V2: i32 = 609;
/// cmd 610 GET_CONVERSATION_INFO_LIST_V2.
pub const GET_CONVERSATION_INFO_LIST_V2: i32 = 610;
/// cmd 2003 GET_MEDIA_UPLOAD_TOKEN.
pub const GET_MEDIA_UPLOAD_TOKEN: i32 = 2003;
/// cmd 2005 GET_TICKET.
pub const GET_TICKET: i32 = 2005;
/// cmd 2010 CLIENT_ACK.
pub const CLIENT_ACK: i32 = 2010;
/// cmd 2059 MEDIA_UPLOAD_CONFIG: the ImageX and VOD credentials TikTok web
/// uploads private images and videos with (PROTOCOL.md 10.3).
pub const MEDIA_UPLOAD_CONFIG: i32 = 2059;

/// Frontier service of IM requests and their replies.
pub const SERVICE_IM: i32 = 5;
/// Frontier method of IM requests.
pub const METHOD_IM: i32 = 1;
/// Frontier service of bsync pushes (`bytedance.bsync.cache_svr`).
pub const SERVICE_BSYNC_PUSH: i32 = 20032;
/// Frontier product id of the IM socket.
pub const FPID_IM: u32 = 9;
/// The frontier app id on the fpid-9 socket (seen in live captures).
pub const FRONTIER_AID: u32 = 1459;
/// The product app id used in HTTP calls and `Request.headers` (seen in live captures).
pub const WEB_AID: u32 = 1988;
/// The first `Request.sequence_id` a page uses.
pub const FIRST_SEQUENCE_ID: i64 = 10001;

/// The HTTP route of a cmd, relative to the im-api base (`None` when unknown).
pub fn route(cmd: i32) -> Option<&'static str> {
    Some(match cmd {
        SEND_MESSAGE => "v1/message/send",
        GET_MESSAGES_BY_USER => "v1/message/get_by_user",
        GET_MESSAGES_BY_USER_INIT_V2 => "v2/message/get_by_user_init",
        GET_MESSAGES_BY_CONVERSATION => "v1/message/get_by_conversation",
        GET_CONVERSATION_INFO_V2 => "v2/conversation/get_info",
        CREATE_CONVERSATION_V2 => "v2/conversation/create",
        GET_CONVERSATION_INFO_LIST_V2 => "v2/conversation/get_info_list",
        GET_TICKET => "v1/conversation/get_ticket",
        GET_MEDIA_UPLOAD_TOKEN => UPLOAD_TOKEN_ROUTES[0],
        CLIENT_ACK => "v1/client/ack",
        MEDIA_UPLOAD_CONFIG => "v1/media/upload_config",
        _ => return None,
    })
}

/// cmd 2003's HTTP routes: the 2026 web bundle's (the default) and WEBSDK
/// 0.7.5's. Which one a given TikTok client uses differs by version.
pub const UPLOAD_TOKEN_ROUTES: [&str; 2] =
    ["tiktok/v1/im/upload_config", "v1/media/get_upload_token"];

/// The cmd served at an HTTP route (the inverse of [`route`]).
pub fn cmd_for_route(path: &str) -> Option<i32> {
    let path = path.trim_start_matches('/');
    [
        SEND_MESSAGE,
        GET_MESSAGES_BY_USER,
        GET_MESSAGES_BY_USER_INIT_V2,
        GET_MESSAGES_BY_CONVERSATION,
        GET_CONVERSATION_INFO_V2,
        CREATE_CONVERSATION_V2,
        GET_CONVERSATION_INFO_LIST_V2,
        GET_TICKET,
        CLIENT_ACK,
        MEDIA_UPLOAD_CONFIG,
    ]
    .into_iter()
    .find(|cmd| route(*cmd) == Some(path))
    .or_else(|| {
        UPLOAD_TOKEN_ROUTES
            .contains(&path)
            .then_some(GET_MEDIA_UPLOAD_TOKEN)
    })
}

/// The query string the web client puts on im-api calls (seen in live captures).
pub const WEB_API_QUERY: &str =
    "aid=1988&version_code=1.0.0&app_name=tiktok_web&device_platform=web_pc";
