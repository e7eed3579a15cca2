//! The IM service: turns one `Request` into an action, the same way for WS and
//! HTTP. Validation is strict on purpose, so a client bug shows up here first.

use std::time::Duration;

use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::content::{MAX_TEXT_UTF16_UNITS, MESSAGE_TYPE_TEXT, utf16_len};
use tiktok_dm_proto::ids::{ClientMessageId, Uid};
use tiktok_dm_proto::schema::{
    ConversationInfoV2, GetConversationInfoListV2ResponseBody, GetConversationInfoV2ResponseBody,
    MessagesPerUserInitV2ResponseBody, Participant, ParticipantsPage, Request, Response,
    ResponseBody, SendMessageRequestBody, SendMessageResponseBody, map_get,
};

use crate::faults::Fault;
use crate::push::{Push, new_message_push};
use crate::seed::{Account, Conversation};
use crate::state::{ReceivedMessage, Shared, Transport, log_id, now_ms};

/// `message_type` of an image message: Douyin's 27 (TikTok web's is unknown).
pub(crate) const IMAGE_MESSAGE_TYPE: i32 = 27;

/// The image content keys, in the order the Douyin capture has them.
const IMAGE_KEYS: [&str; 7] = [
    "resource_url",
    "cover_height",
    "cover_width",
    "check_pics",
    "md5",
    "from_gallery",
    "aweType",
];

/// Checks image content against the committed object it names.
fn check_image_content(shared: &Shared, content: &serde_json::Value) -> Result<(), String> {
    let keys: Vec<&str> = content
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys != IMAGE_KEYS {
        return Err(format!(
            "image content keys must be {IMAGE_KEYS:?} in that order, got {keys:?}"
        ));
    }
    let url = &content["resource_url"];
    let url_keys: Vec<&str> = url
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if url_keys != ["oid", "skey", "data_size", "md5"] {
        return Err(format!(
            "resource_url keys must be oid, skey, data_size, md5, got {url_keys:?}"
        ));
    }
    if content["aweType"].as_i64() != Some(2702) {
        return Err("image content aweType must be 2702".into());
    }
    let oid = url["oid"].as_str().unwrap_or_default();
    let state = shared.lock();
    let object = state
        .upload
        .objects
        .get(oid)
        .ok_or_else(|| format!("resource_url.oid {oid:?} is not a committed upload"))?;
    if url["md5"].as_str() != Some(object.md5.as_str())
        || content["md5"].as_str() != Some(object.md5.as_str())
    {
        return Err("the image md5 does not match the committed upload".into());
    }
    if url["data_size"].as_u64() != Some(object.bytes.len() as u64) {
        return Err("resource_url.data_size does not match the committed upload".into());
    }
    if url["skey"].as_str() != Some(object.secret_key.as_str()) {
        return Err("resource_url.skey is not the committed upload's secret key".into());
    }
    if content["cover_width"].as_u64() != Some(u64::from(object.width))
        || content["cover_height"].as_u64() != Some(u64::from(object.height))
    {
        return Err("cover_width/cover_height do not match the image".into());
    }
    if !content["check_pics"].is_array() || content["from_gallery"].as_i64().is_none() {
        return Err("check_pics must be an array and from_gallery a number".into());
    }
    Ok(())
}

/// The region string the sandbox reports in Response field 14.
pub(crate) const REGION: &str = "US-TTP";

/// What the transport should do with a request.
#[derive(Debug)]
pub(crate) enum Action {
    /// Answer now.
    Reply(Box<Response>),
    /// Answer after a delay.
    ReplyLater(Duration, Box<Response>),
    /// Never answer.
    NoReply,
    /// Close the WebSocket (WS only).
    CloseSocket,
}

impl Action {
    fn reply(response: Response) -> Self {
        Self::Reply(Box::new(response))
    }
}

/// A gateway-level rejection: only status_code, error_desc and log_id, as captured.
pub(crate) fn gateway_error(shared: &Shared, status_code: i32) -> Response {
    Response {
        status_code: Some(status_code),
        error_desc: Some(status_code.to_string().into()),
        log_id: Some(log_id(now_ms(), shared.next_counter()).into()),
        ..Response::default()
    }
}

struct Envelope<'a> {
    shared: &'a Shared,
    request: &'a Request,
    account: &'a Account,
    arrived: u64,
}

impl Envelope<'_> {
    fn reply(&self, status_code: i32, desc: &str, body: Option<ResponseBody>) -> Response {
        Response {
            cmd: self.request.cmd,
            sequence_id: self.request.sequence_id,
            status_code: Some(status_code),
            error_desc: Some(desc.into()),
            inbox_type: Some(self.request.inbox_type.unwrap_or_default()),
            body,
            log_id: Some(log_id(self.arrived, self.shared.next_counter()).into()),
            request_arrived_time: Some(self.arrived as i64),
            server_execution_end_time: Some(now_ms() as i64),
            server_region: Some(REGION.into()),
            own_user_id: Some(self.account.uid.get()),
            ..Response::default()
        }
    }

    fn invalid(&self, desc: &str) -> Action {
        Action::reply(self.reply(4, desc, None))
    }
}

/// Handles one encoded IM request from `account` (`route_cmd`: the cmd an HTTP
/// route serves; `None` over the WebSocket). The push (for an accepted
/// send) is returned for the transport to deliver after it has queued the reply.
pub(crate) fn handle(
    shared: &Shared,
    account: &Account,
    bytes: &[u8],
    transport: Transport,
    base_url: &str,
    route_cmd: Option<i32>,
) -> (Action, Option<Push>) {
    let mut push = None;
    let action = handle_inner(
        shared, account, bytes, transport, base_url, route_cmd, &mut push,
    );
    (action, push)
}

fn handle_inner(
    shared: &Shared,
    account: &Account,
    bytes: &[u8],
    transport: Transport,
    base_url: &str,
    route_cmd: Option<i32>,
    push: &mut Option<Push>,
) -> Action {
    let arrived = now_ms();
    if transport == Transport::Ws {
        let fault = shared
            .lock()
            .faults
            .take(|f| matches!(f, Fault::WsUnanswered | Fault::CloseSocket));
        match fault {
            Some(Fault::WsUnanswered) => return Action::NoReply,
            Some(Fault::CloseSocket) => return Action::CloseSocket,
            _ => {}
        }
    }
    let request = match Request::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = gateway_error(shared, 4);
            resp.error_desc = Some(format!("request does not decode: {e}").into());
            return Action::reply(resp);
        }
    };
    // An HTTP route serves one cmd.
    if let Some(route_cmd) = route_cmd.filter(|c| request.cmd != Some(*c)) {
        let mut resp = gateway_error(shared, 4);
        resp.error_desc = Some(
            format!(
                "route serves cmd {route_cmd}, request has cmd {:?}",
                request.cmd
            )
            .into(),
        );
        return Action::reply(resp);
    }
    let env = Envelope {
        shared,
        request: &request,
        account,
        arrived,
    };
    let fault = shared.lock().faults.take(|f| {
        matches!(
            f,
            Fault::InvalidSession | Fault::GatewayRejection | Fault::ServerError
        )
    });
    match fault {
        Some(Fault::InvalidSession) => return Action::reply(env.reply(1, "INVALID_TOKEN", None)),
        Some(Fault::GatewayRejection) => return Action::reply(gateway_error(shared, 200_001)),
        Some(Fault::ServerError) => {
            return Action::reply(env.reply(6, "SERVER_ERR: sandbox fault", None));
        }
        _ => {}
    }
    if request.device_id.as_deref() != Some(account.wid.as_str()) {
        return env.invalid("device_id does not match the web device id of this session");
    }
    let Some(body) = request.body.as_ref() else {
        return env.invalid("request has no body");
    };
    match request.cmd {
        Some(cmd::SEND_MESSAGE) => match body.send_message_body.as_ref() {
            Some(send) => handle_send(&env, send, transport, push),
            None => env.invalid("cmd 100 without send_message_body"),
        },
        Some(cmd::GET_MEDIA_UPLOAD_TOKEN) => {
            if shared
                .lock()
                .faults
                .take(|f| *f == Fault::RejectCredentials)
                .is_some()
            {
                let desc = "USER_FORBIDDEN: media upload is not allowed for this account";
                return Action::reply(env.reply(11, desc, None));
            }
            let token = crate::upload::issue_credentials(shared, account.uid, base_url);
            let body = ResponseBody {
                get_upload_token_body: Some(token),
                ..ResponseBody::default()
            };
            Action::reply(env.reply(0, "OK", Some(body)))
        }
        Some(cmd::GET_MESSAGES_BY_USER_INIT_V2) => {
            let conversations = shared
                .seed
                .conversations
                .iter()
                .filter(|c| c.conversation_id.peer_of(account.uid).is_some())
                .map(|c| conversation_info(c, account.uid))
                .collect();
            let init = MessagesPerUserInitV2ResponseBody {
                conversations,
                per_user_cursor: Some(0),
                next_cursor: Some(0),
                has_more: Some(false),
                ..MessagesPerUserInitV2ResponseBody::default()
            };
            let body = ResponseBody {
                messages_per_user_init_v2_body: Some(init),
                ..ResponseBody::default()
            };
            Action::reply(env.reply(0, "OK", Some(body)))
        }
        Some(cmd::GET_CONVERSATION_INFO_LIST_V2) => {
            let asked = body
                .get_conversation_info_list_v2_body
                .as_ref()
                .map(|b| &b.conversation_info_list[..]);
            let found = asked
                .unwrap_or_default()
                .iter()
                .filter_map(|q| shared.conversation(q.conversation_id.as_deref()?))
                .filter(|c| c.conversation_id.peer_of(account.uid).is_some())
                .map(|c| conversation_info(c, account.uid))
                .collect();
            let list = GetConversationInfoListV2ResponseBody {
                conversation_info_list: found,
                ..Default::default()
            };
            let body = ResponseBody {
                get_conversation_info_list_v2_body: Some(list),
                ..ResponseBody::default()
            };
            Action::reply(env.reply(0, "OK", Some(body)))
        }
        Some(cmd::GET_CONVERSATION_INFO_V2) => {
            let id = body
                .get_conversation_info_v2_body
                .as_ref()
                .and_then(|b| b.conversation_id.as_deref());
            match id
                .and_then(|id| shared.conversation(id))
                .filter(|c| c.conversation_id.peer_of(account.uid).is_some())
            {
                Some(c) => {
                    let info = GetConversationInfoV2ResponseBody {
                        conversation_info: Some(conversation_info(c, account.uid)),
                        ..Default::default()
                    };
                    let body = ResponseBody {
                        get_conversation_info_v2_body: Some(info),
                        ..ResponseBody::default()
                    };
                    Action::reply(env.reply(0, "OK", Some(body)))
                }
                None => Action::reply(env.reply(3, "CONVERSATION_NOT_FOUND", None)),
            }
        }
        Some(other) => Action::reply(env.reply(
            5,
            &format!("INVALID_CMD: the sandbox does not serve cmd {other}"),
            None,
        )),
        None => env.invalid("request has no cmd"),
    }
}

fn conversation_info(c: &Conversation, own: Uid) -> ConversationInfoV2 {
    let participants = c
        .conversation_id
        .participants()
        .map(|(a, b)| vec![a, b])
        .unwrap_or_default()
        .into_iter()
        .map(|uid| Participant {
            user_id: Some(uid.get()),
            ..Participant::default()
        })
        .collect();
    ConversationInfoV2 {
        conversation_id: Some(c.conversation_id.as_str().into()),
        conversation_short_id: Some(c.conversation_short_id.get()),
        conversation_type: Some(1),
        ticket: Some("deprecated".into()),
        first_page_participants: Some(ParticipantsPage {
            participants,
            has_more: Some(false),
            ..ParticipantsPage::default()
        }),
        participants_count: Some(2),
        is_participant: Some(c.conversation_id.peer_of(own).is_some()),
        inbox_type: Some(c.inbox_type),
        ..ConversationInfoV2::default()
    }
}

/// Checks a send body; on success returns the conversation and parsed content.
fn validate_send<'s>(
    env: &Envelope<'s>,
    send: &SendMessageRequestBody,
) -> Result<(&'s Conversation, ClientMessageId, serde_json::Value), Action> {
    let id = send.conversation_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err(env.invalid("conversation_id is missing"));
    }
    let Some(conversation) = env.shared.conversation(id) else {
        return Err(Action::reply(env.reply(3, "CONVERSATION_NOT_FOUND", None)));
    };
    if send.conversation_short_id != Some(conversation.conversation_short_id.get()) {
        return Err(env.invalid("conversation_short_id does not match conversation_id"));
    }
    if send.conversation_type != Some(1) {
        return Err(env.invalid("conversation_type must be 1 for a one-to-one conversation"));
    }
    let client_id = send.client_message_id.as_deref().unwrap_or_default();
    let client_id = ClientMessageId::parse(client_id).map_err(|e| env.invalid(&e.to_string()))?;
    if map_get(&send.ext, "s:client_message_id") != Some(client_id.as_str()) {
        return Err(env.invalid("ext s:client_message_id must equal client_message_id"));
    }
    if send.ticket.as_deref().is_none_or(str::is_empty) {
        return Err(env.invalid("ticket is missing"));
    }
    let content = send.content.as_deref().unwrap_or_default();
    let parsed: serde_json::Value = match serde_json::from_str(content) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return Err(env.invalid("content is not a JSON object")),
    };
    match send.message_type {
        Some(MESSAGE_TYPE_TEXT) => {
            let text = parsed.get("text").and_then(serde_json::Value::as_str);
            let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
                return Err(env.invalid("text content has no text"));
            };
            if parsed
                .get("aweType")
                .and_then(serde_json::Value::as_i64)
                .is_none()
            {
                return Err(env.invalid("text content has no aweType"));
            }
            if utf16_len(text) > MAX_TEXT_UTF16_UNITS {
                return Err(env.invalid("text is longer than 6000 characters"));
            }
        }
        Some(IMAGE_MESSAGE_TYPE) => {
            if let Err(reason) = check_image_content(env.shared, &parsed) {
                return Err(env.invalid(&reason));
            }
        }
        other => {
            return Err(env.invalid(&format!(
                "message_type {other:?} is not supported by the sandbox"
            )));
        }
    }
    Ok((conversation, client_id, parsed))
}

fn business_rejection(
    env: &Envelope<'_>,
    client_id: &str,
    code: i64,
    tips: &str,
    scene: &str,
) -> Response {
    let check = serde_json::json!({
        "status_code": code,
        "tips": "",
        "status_msg": {"msg_type": 1, "msg_content": {"tips": tips}},
        "decision_type": "",
        "raw_check_code": code,
        "event_tracking": {"scene": scene},
    });
    let body = SendMessageResponseBody {
        server_message_id: Some(env.shared.next_server_message_id()),
        status: Some(3),
        client_message_id: Some(client_id.into()),
        check_code: Some(2),
        check_message: Some(check.to_string().into()),
        inbox_page_category: Some(2),
        ..SendMessageResponseBody::default()
    };
    env.reply(
        0,
        "OK",
        Some(ResponseBody {
            send_message_body: Some(body),
            ..ResponseBody::default()
        }),
    )
}

const TIPS_7193: &str =
    "You can only send up to 1 message before this user accepts your message request.";
const TIPS_7180: &str = "You're sending messages too fast. Take a break and try again later.";

fn handle_send(
    env: &Envelope<'_>,
    send: &SendMessageRequestBody,
    transport: Transport,
    push: &mut Option<Push>,
) -> Action {
    let (conversation, client_id, content) = match validate_send(env, send) {
        Ok(v) => v,
        Err(action) => return action,
    };
    let sender = env.account.uid;
    let Some(peer) = conversation.conversation_id.peer_of(sender) else {
        let body = SendMessageResponseBody {
            status: Some(1),
            client_message_id: Some(client_id.as_str().into()),
            ..SendMessageResponseBody::default()
        };
        return Action::reply(env.reply(
            0,
            "OK",
            Some(ResponseBody {
                send_message_body: Some(body),
                ..Default::default()
            }),
        ));
    };
    let shared = env.shared;
    let mut state = shared.lock();
    let key = (sender, client_id.to_string());
    let (message, duplicate) = if let Some(&index) = state.by_client_id.get(&key) {
        // A retransmission (or a caller's retry with the same id) gets the same answer.
        (state.messages[index].clone(), true)
    } else {
        let fault = state
            .faults
            .take(|f| matches!(f, Fault::MessageRequestLimit | Fault::RateLimit));
        let conv_id = conversation.conversation_id.as_str();
        let by = |uid: Uid| {
            state
                .messages
                .iter()
                .filter(|m| m.conversation_id == conv_id && m.sender_uid == uid.get())
                .count()
        };
        let request_limited = conversation.message_request && by(peer) == 0 && by(sender) >= 1;
        match fault {
            Some(Fault::RateLimit) => {
                return Action::reply(business_rejection(
                    env,
                    client_id.as_str(),
                    7180,
                    TIPS_7180,
                    "send_too_fast",
                ));
            }
            Some(_) => {
                return Action::reply(business_rejection(
                    env,
                    client_id.as_str(),
                    7193,
                    TIPS_7193,
                    "message_request_limit",
                ));
            }
            None if request_limited => {
                return Action::reply(business_rejection(
                    env,
                    client_id.as_str(),
                    7193,
                    TIPS_7193,
                    "message_request_limit",
                ));
            }
            None => {}
        }
        let message = ReceivedMessage {
            conversation_id: conv_id.to_owned(),
            conversation_short_id: conversation.conversation_short_id.get(),
            server_message_id: shared.next_server_message_id(),
            client_message_id: client_id.to_string(),
            sender_uid: sender.get(),
            message_type: send.message_type.unwrap_or_default(),
            content,
            transport,
            received_at_ms: now_ms() as i64,
        };
        let index = state.messages.len();
        state.by_client_id.insert(key, index);
        state.messages.push(message.clone());
        (message, false)
    };
    if !duplicate {
        *push = Some(new_message_push(&message, send, [sender, peer]));
    }
    let ack_fault = state
        .faults
        .take(|f| matches!(f, Fault::DropAcks | Fault::DelayAcks { .. }));
    drop(state);
    let body = SendMessageResponseBody {
        server_message_id: Some(message.server_message_id),
        status: Some(0),
        client_message_id: Some(message.client_message_id.as_str().into()),
        check_code: Some(0),
        check_message: Some(Default::default()),
        inbox_page_category: Some(if conversation.message_request { 2 } else { 1 }),
        ..SendMessageResponseBody::default()
    };
    let reply = env.reply(
        0,
        "OK",
        Some(ResponseBody {
            send_message_body: Some(body),
            ..ResponseBody::default()
        }),
    );
    match ack_fault {
        Some(Fault::DropAcks) => Action::NoReply,
        Some(f) => Action::ReplyLater(f.delay().unwrap_or_default(), Box::new(reply)),
        None => Action::reply(reply),
    }
}

/// Re-encodes a reply for the wire.
pub(crate) fn encode(response: &Response) -> Vec<u8> {
    response.encode_to_vec()
}
