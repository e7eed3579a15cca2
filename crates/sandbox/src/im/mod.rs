//! The IM service: turns one `Request` into an action, the same way for WS and
//! HTTP. Validation is strict on purpose, so a client bug shows up here first;
//! but only the send (cmd 100) must carry the session's `device_id`, as the
//! working client sends history and upload-config requests without one
//! (PROTOCOL.md 10.1).

mod body;
mod conversations;
mod history;
mod image;
mod send;

use std::time::Duration;

use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::schema::{Request, Response, ResponseBody};

use crate::faults::Fault;
use crate::http::Addressed;
use crate::push::Push;
use crate::seed::Account;
use crate::state::{Shared, Transport, log_id, now_ms};

pub(crate) use body::{MediaRef, Placed, media_info, message_body};

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

/// One decoded request and who sent it, with what a reply needs.
struct Envelope<'a> {
    shared: &'a Shared,
    request: &'a Request,
    account: &'a Account,
    arrived: u64,
    /// Where the request was addressed: upload credentials name its host,
    /// media URLs its scheme and host.
    host: &'a Addressed,
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

    fn ok(&self, body: ResponseBody) -> Action {
        Action::reply(self.reply(0, "OK", Some(body)))
    }

    fn invalid(&self, desc: &str) -> Action {
        Action::reply(self.reply(4, desc, None))
    }

    fn not_found(&self) -> Action {
        Action::reply(self.reply(3, "CONVERSATION_NOT_FOUND", None))
    }
}

/// How long a `delay_sends` fault holds back an IM request, whose encoded
/// bytes `request` gives: only a send (cmd 100) takes one. Nothing is read
/// or decoded while no such fault is active.
pub(crate) fn send_delay<B: std::ops::Deref<Target = [u8]>>(
    shared: &Shared,
    request: impl FnOnce() -> Option<B>,
) -> Option<Duration> {
    let mut state = shared.lock();
    let delays = |f: &Fault| matches!(f, Fault::DelaySends { .. });
    if !state.faults.any(delays) {
        return None;
    }
    let request = Request::decode(&request()?).ok()?;
    if request.cmd != Some(cmd::SEND_MESSAGE) {
        return None;
    }
    state.faults.take(delays)?.delay()
}

/// Handles one encoded IM request from `account` (`route_cmd`: the cmd an HTTP
/// route serves; `None` over the WebSocket; `host`: where the request was
/// addressed). The push (for an accepted send) is returned for
/// the transport to deliver after it has queued the reply.
pub(crate) fn handle(
    shared: &Shared,
    account: &Account,
    bytes: &[u8],
    transport: Transport,
    host: &Addressed,
    route_cmd: Option<i32>,
) -> (Action, Option<Push>) {
    let arrived = now_ms();
    if transport == Transport::Ws {
        let fault = shared
            .lock()
            .faults
            .take(|f| matches!(f, Fault::WsUnanswered | Fault::CloseSocket));
        match fault {
            Some(Fault::WsUnanswered) => return (Action::NoReply, None),
            Some(Fault::CloseSocket) => return (Action::CloseSocket, None),
            _ => {}
        }
    }
    let request = match Request::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = gateway_error(shared, 4);
            resp.error_desc = Some(format!("request does not decode: {e}").into());
            return (Action::reply(resp), None);
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
        return (Action::reply(resp), None);
    }
    let env = Envelope {
        shared,
        request: &request,
        account,
        arrived,
        host,
    };
    let fault = shared.lock().faults.take(|f| {
        matches!(
            f,
            Fault::InvalidSession | Fault::GatewayRejection | Fault::ServerError
        )
    });
    let action = match fault {
        Some(Fault::InvalidSession) => Action::reply(env.reply(1, "INVALID_TOKEN", None)),
        Some(Fault::GatewayRejection) => Action::reply(gateway_error(shared, 200_001)),
        Some(Fault::ServerError) => Action::reply(env.reply(6, "SERVER_ERR: sandbox fault", None)),
        _ => return dispatch(&env, transport),
    };
    (action, None)
}

/// Serves the request by its cmd.
fn dispatch(env: &Envelope<'_>, transport: Transport) -> (Action, Option<Push>) {
    let Some(body) = env.request.body.as_ref() else {
        return (env.invalid("request has no body"), None);
    };
    let action = match env.request.cmd {
        Some(cmd::SEND_MESSAGE) => {
            if env.request.device_id.as_deref() != Some(env.account.wid.as_str()) {
                let desc = "device_id does not match the web device id of this session";
                return (env.invalid(desc), None);
            }
            return match body.send_message_body.as_ref() {
                Some(send) => send::handle_send(env, send, transport),
                None => (env.invalid("cmd 100 without send_message_body"), None),
            };
        }
        Some(cmd::MEDIA_UPLOAD_CONFIG) => upload_config(env),
        Some(cmd::GET_MESSAGES_BY_CONVERSATION) => match &body.messages_in_conversation_body {
            Some(asked) => history::handle_history(env, asked),
            None => env.invalid("cmd 301 without messages_in_conversation_body"),
        },
        Some(cmd::GET_MESSAGES_BY_USER_INIT_V2) => conversations::inbox(env),
        Some(cmd::GET_CONVERSATION_INFO_LIST_V2) => conversations::info_list(env, body),
        Some(cmd::GET_CONVERSATION_INFO_V2) => conversations::info(env, body),
        Some(other) => Action::reply(env.reply(
            5,
            &format!("INVALID_CMD: the sandbox does not serve cmd {other}"),
            None,
        )),
        None => env.invalid("request has no cmd"),
    };
    (action, None)
}

/// cmd 2059: ImageX credentials for this account, naming this sandbox as the
/// upload API host.
fn upload_config(env: &Envelope<'_>) -> Action {
    let rejected = env
        .shared
        .lock()
        .faults
        .take(|f| *f == Fault::RejectCredentials)
        .is_some();
    if rejected {
        let desc = "USER_FORBIDDEN: media upload is not allowed for this account";
        return Action::reply(env.reply(11, desc, None));
    }
    let configs = crate::upload::issue_credentials(env.shared, env.account.uid, &env.host.host);
    env.ok(ResponseBody {
        media_upload_config_body: Some(configs),
        ..ResponseBody::default()
    })
}

/// Re-encodes a reply for the wire.
pub(crate) fn encode(response: &Response) -> Vec<u8> {
    response.encode_to_vec()
}
