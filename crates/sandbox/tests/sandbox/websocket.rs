//! The frontier endpoint: handshake checks, replies by seqid, downlink
//! encodings (`__lz4` on fpid 9, gzip pushes elsewhere), heartbeats, pushes.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::access_key::{TIKTOK_WEB_APP_KEY, access_key};
use tiktok_dm_proto::codec::{frame_response, im_frame};
use tiktok_dm_proto::schema::{Frame, Request, Response};
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::{alice, new_id, send_request};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The socket query of the working open-source client (PROTOCOL.md 10.1), with
/// `fpid` as given (left out when `None`) and the access_key for that fpid.
pub fn working_client_query(account: &Account, fpid: Option<u32>) -> String {
    let key = access_key(fpid.unwrap_or(9), TIKTOK_WEB_APP_KEY, account.wid.as_str());
    let fpid = fpid.map(|f| format!("&fpid={f}")).unwrap_or_default();
    format!(
        "device_platform=web&version_code=fws_1.0.0&access_key={key}{fpid}&aid=1459\
         &ttwid=1%7Csandbox%7C1786000000%7Cabc&xsack=1&xaack=1&xsqos=0"
    )
}

async fn dial(
    sandbox: &TestSandbox,
    account: &Account,
    query: &str,
    protocol: Option<&str>,
) -> Result<(Ws, http::HeaderMap), WsError> {
    let mut request = format!("{}?{query}", sandbox.ws_url())
        .into_client_request()
        .unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    request.headers_mut().insert(
        "cookie",
        format!("sessionid={}", account.session).parse().unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    Ok((ws, response.headers().clone()))
}

/// An fpid-9 socket opened the way the working client opens it: no subprotocol.
pub async fn open(sandbox: &TestSandbox, account: &Account) -> Ws {
    let query = working_client_query(account, Some(9));
    dial(sandbox, account, &query, None).await.unwrap().0
}

fn refused_with(result: Result<(Ws, http::HeaderMap), WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected the handshake to be refused"),
    }
}

pub async fn next_binary(ws: &mut Ws) -> Frame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Binary(bytes) = message {
            return Frame::decode(&bytes).unwrap();
        }
    }
}

/// Sends `request` in an IM frame and returns the reply frame (pushes that
/// arrive first are skipped).
pub async fn exchange(ws: &mut Ws, request: &Request) -> (Frame, Response) {
    let seq = request.sequence_id.unwrap_or_default();
    let frame = im_frame(&request.encode_to_vec(), seq, 1, Vec::new());
    ws.send(WsMessage::Binary(frame.encode_to_vec().into()))
        .await
        .unwrap();
    loop {
        let frame = next_binary(ws).await;
        if frame.service == Some(5) && frame.seqid == Some(seq as u64) {
            let response = frame_response(&frame).unwrap();
            return (frame, response);
        }
    }
}

#[tokio::test]
async fn a_handshake_without_a_subprotocol_is_accepted_and_one_offering_pbbp2_gets_it() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let query = working_client_query(&a, Some(9));
    let (_ws, headers) = dial(&sandbox, &a, &query, None).await.unwrap();
    assert!(headers.get("sec-websocket-protocol").is_none());
    assert_eq!(headers["handshake-status"], "0");
    let (_ws, headers) = dial(&sandbox, &a, &query, Some("binary, base64, pbbp2"))
        .await
        .unwrap();
    assert_eq!(headers["sec-websocket-protocol"], "pbbp2");
    assert_eq!(headers["handshake-options"], "ping-interval=30");
    assert_eq!(headers["x-frontier-logid"].len(), 34);
    assert_eq!(sandbox.handle.handshakes(), 2);
}

#[tokio::test]
async fn handshakes_need_a_known_session_the_right_access_key_and_pbbp2_when_protocols_are_offered()
{
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let query = working_client_query(&a, Some(9));
    assert_eq!(
        refused_with(dial(&sandbox, &a, &query, Some("binary, base64")).await),
        400
    );
    let wrong_key = query.replace(
        &access_key(9, TIKTOK_WEB_APP_KEY, a.wid.as_str()),
        &"0".repeat(32),
    );
    assert_eq!(
        refused_with(dial(&sandbox, &a, &wrong_key, None).await),
        401
    );
    // A key computed for another fpid does not open the fpid-9 socket.
    let other_fpid_key = query.replace(
        &access_key(9, TIKTOK_WEB_APP_KEY, a.wid.as_str()),
        &access_key(32, TIKTOK_WEB_APP_KEY, a.wid.as_str()),
    );
    assert_eq!(
        refused_with(dial(&sandbox, &a, &other_fpid_key, None).await),
        401
    );
    let mut stranger = a.clone();
    stranger.session = "unknown".into();
    assert_eq!(
        refused_with(dial(&sandbox, &stranger, &query, None).await),
        401
    );
    let wrong_aid = query.replace("aid=1459", "aid=1988");
    assert_eq!(
        refused_with(dial(&sandbox, &a, &wrong_aid, None).await),
        400
    );
    assert_eq!(sandbox.handle.handshakes(), 0);
}

#[tokio::test]
async fn on_an_fpid_9_socket_the_reply_and_the_echo_arrive_as_lz4_frames() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let mut ws = open(&sandbox, &a).await;
    let request = send_request(&sandbox, &a, 0, 10009, &new_id(20));
    let (reply, response) = exchange(&mut ws, &request).await;
    assert_eq!(
        (reply.seqid, reply.service, reply.method),
        (Some(10009), Some(5), Some(1))
    );
    assert_eq!(
        (
            reply.payload_encoding.as_deref(),
            reply.payload_type.as_deref()
        ),
        (Some("__lz4"), Some("pb"))
    );
    assert_eq!(response.sequence_id, Some(10009));
    let server_id = response
        .body
        .unwrap()
        .send_message_body
        .unwrap()
        .server_message_id;

    let push = next_binary(&mut ws).await;
    assert_eq!(
        (
            push.service,
            push.payload_encoding.as_deref(),
            push.payload_type.as_deref()
        ),
        (Some(20032), Some("__lz4"), Some("pb"))
    );
    let notify = frame_response(&push).unwrap();
    assert_eq!((notify.cmd, notify.sequence_id), (Some(500), None));
    let message = notify
        .body
        .unwrap()
        .has_new_message_notify
        .remove(0)
        .message
        .unwrap();
    assert_eq!(message.server_message_id, server_id);
    assert_eq!(message.sender, Some(a.uid.get()));
}

#[tokio::test]
async fn on_a_socket_without_fpid_9_replies_are_plain_and_pushes_stay_gzip() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    for fpid in [None, Some(32)] {
        let query = working_client_query(&a, fpid);
        let (mut ws, _) = dial(&sandbox, &a, &query, Some("pbbp2")).await.unwrap();
        let id = new_id(30 + fpid.map_or(0, |_| 1));
        let (reply, response) = exchange(&mut ws, &send_request(&sandbox, &a, 0, 10001, &id)).await;
        assert_eq!(reply.payload_encoding, None, "fpid {fpid:?}");
        assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
        let push = next_binary(&mut ws).await;
        assert_eq!(
            (push.service, push.payload_encoding.as_deref()),
            (Some(20032), Some("gzip")),
            "fpid {fpid:?}"
        );
        assert_eq!(frame_response(&push).unwrap().cmd, Some(500));
    }
}

#[tokio::test]
async fn a_socket_that_never_says_hi_or_subscribes_still_gets_the_echo_of_anothers_send() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let bob = sandbox.handle.account("bob").unwrap().clone();
    let mut bob_ws = open(&sandbox, &bob).await;
    let mut alice_ws = open(&sandbox, &a).await;
    let request = send_request(&sandbox, &a, 0, 10009, &new_id(21));
    let (_, response) = exchange(&mut alice_ws, &request).await;
    assert_eq!(response.status_code, Some(0));
    let push = next_binary(&mut bob_ws).await;
    assert_eq!(push.payload_encoding.as_deref(), Some("__lz4"));
    let notify = frame_response(&push).unwrap();
    assert_eq!(
        notify.body.unwrap().has_new_message_notify[0]
            .message
            .as_ref()
            .unwrap()
            .sender,
        Some(a.uid.get())
    );
    assert_eq!(sandbox.handle.heartbeats(), 0);
}

#[tokio::test]
async fn hi_is_answered_and_bsync_subscribes_are_accepted_silently() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let mut ws = open(&sandbox, &a).await;
    let subscribe = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../proto/testdata/vectors/tiktok_web_ws_bsync_subscribe_a.b64"),
    )
    .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(subscribe.trim())
        .unwrap();
    ws.send(WsMessage::Binary(bytes.into())).await.unwrap();
    ws.send(WsMessage::Text("hi".into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        answer,
        WsMessage::Text("hi".into()),
        "the subscribe got no reply, the heartbeat did"
    );
    assert_eq!(sandbox.handle.heartbeats(), 1);
}
