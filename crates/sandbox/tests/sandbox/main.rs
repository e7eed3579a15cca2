//! The sandbox as a server: driven with the protocol crate over raw HTTP and
//! WebSocket, never through our client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod history;
mod http_api;
mod inbound;
mod private_image;
mod ticket_guard;
mod tls;
mod upload;
mod websocket;
mod working_client;

use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{SendParams, send_message_request};
use tiktok_dm_proto::ids::{ClientMessageId, ConversationId, ConversationShortId};
use tiktok_dm_proto::schema::{Request, Response, SendMessageRequestBody};
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::TestSandbox;

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POSTs `request` to the im-api `route` with `account`'s session cookie and
/// `query` (empty: none), and decodes the answer.
pub async fn post_route(
    sandbox: &TestSandbox,
    session: &str,
    route: &str,
    query: &str,
    request: &Request,
) -> Response {
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let response = http()
        .post(format!("{}/{route}{query}", sandbox.base_url()))
        .header("content-type", "application/x-protobuf")
        .header("cookie", format!("ttwid=x; sessionid={session}"))
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Response::decode(&response.bytes().await.unwrap()).unwrap()
}

/// `request` with its send body changed by `change`.
pub fn alter(mut request: Request, change: impl FnOnce(&mut SendMessageRequestBody)) -> Request {
    let body = request
        .body
        .as_mut()
        .unwrap()
        .send_message_body
        .as_mut()
        .unwrap();
    change(body);
    request
}

/// Asserts that `response` refuses a send with `status` and an `error_desc`
/// that names `reason`.
pub fn assert_refused(response: &Response, status: i32, reason: &str) {
    assert_eq!(response.status_code, Some(status), "{reason}");
    let desc = response.error_desc.as_deref().unwrap_or_default();
    assert!(desc.contains(reason), "expected {reason:?} in {desc:?}");
}

pub fn alice(sandbox: &TestSandbox) -> Account {
    sandbox.handle.account("alice").unwrap().clone()
}

/// A well-formed text send from `account` into the seed's conversation `index`.
pub fn send_request(
    sandbox: &TestSandbox,
    account: &Account,
    index: usize,
    seq: i64,
    id: &ClientMessageId,
) -> Request {
    let c = &sandbox.handle.seed().conversations[index];
    send_request_to(
        account,
        &c.conversation_id,
        c.conversation_short_id,
        seq,
        id,
        r#"{"aweType":0,"text":"hi"}"#,
    )
}

pub fn send_request_to(
    account: &Account,
    conversation: &ConversationId,
    short: ConversationShortId,
    seq: i64,
    id: &ClientMessageId,
    content: &str,
) -> Request {
    send_message_request(SendParams {
        conversation_id: conversation,
        conversation_short_id: short,
        inbox_type: 0,
        content,
        message_type: 7,
        client_message_id: id,
        sequence_id: seq,
        context_headers: Vec::new(),
        device_id: &account.wid,
    })
}

pub fn new_id(n: u8) -> ClientMessageId {
    ClientMessageId::from_random_bytes([n; 16])
}
