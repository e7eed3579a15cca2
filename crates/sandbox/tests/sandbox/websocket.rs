//! The frontier endpoint: handshake checks, replies by seqid, heartbeats, pushes.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::access_key::{TIKTOK_WEB_APP_KEY, access_key};
use tiktok_dm_proto::codec::{frame_response, im_frame};
use tiktok_dm_proto::schema::Frame;
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::{alice, new_id, send_request};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(
    sandbox: &TestSandbox,
    account: &Account,
    key: Option<String>,
    protocol: &str,
) -> Result<(Ws, http::HeaderMap), WsError> {
    let key = key.unwrap_or_else(|| access_key(9, TIKTOK_WEB_APP_KEY, account.wid.as_str()));
    let url = format!(
        "{}?aid=1459&fpid=9&access_key={key}&device_platform=web",
        sandbox.ws_url()
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    request.headers_mut().insert(
        "cookie",
        format!("sessionid={}", account.session).parse().unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    Ok((ws, response.headers().clone()))
}

fn refused_with(result: Result<(Ws, http::HeaderMap), WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected the handshake to be refused"),
    }
}

async fn next_binary(ws: &mut Ws) -> Frame {
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

#[tokio::test]
async fn handshakes_need_pbbp2_a_known_session_and_the_right_access_key() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    assert_eq!(
        refused_with(open(&sandbox, &a, None, "binary, base64").await),
        400
    );
    assert_eq!(
        refused_with(open(&sandbox, &a, Some("0".repeat(32)), "pbbp2").await),
        401
    );
    let mut stranger = a.clone();
    stranger.session = "unknown".into();
    assert_eq!(
        refused_with(open(&sandbox, &stranger, None, "pbbp2").await),
        401
    );
    let (_ws, headers) = open(&sandbox, &a, None, "binary, base64, pbbp2")
        .await
        .unwrap();
    assert_eq!(headers["sec-websocket-protocol"], "pbbp2");
    assert_eq!(headers["handshake-options"], "ping-interval=30");
    assert_eq!(headers["handshake-status"], "0");
    assert_eq!(headers["x-frontier-logid"].len(), 34);
}

#[tokio::test]
async fn a_send_frame_is_answered_with_its_seqid_and_echoed_as_a_gzip_push() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let (mut ws, _) = open(&sandbox, &a, None, "pbbp2").await.unwrap();
    let id = new_id(20);
    let payload = send_request(&sandbox, &a, 0, 10007, &id).encode_to_vec();
    ws.send(WsMessage::Binary(
        im_frame(&payload, 10007, 1, Vec::new())
            .encode_to_vec()
            .into(),
    ))
    .await
    .unwrap();

    let reply = next_binary(&mut ws).await;
    assert_eq!(
        (reply.seqid, reply.service, reply.method),
        (Some(10007), Some(5), Some(1))
    );
    let response = frame_response(&reply).unwrap();
    assert_eq!(response.sequence_id, Some(10007));
    let server_id = response
        .body
        .unwrap()
        .send_message_body
        .unwrap()
        .server_message_id;

    let push = next_binary(&mut ws).await;
    assert_eq!(
        (push.service, push.payload_encoding.as_deref()),
        (Some(20032), Some("gzip"))
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
async fn hi_is_answered_and_bsync_subscribes_are_accepted_silently() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let (mut ws, _) = open(&sandbox, &a, None, "pbbp2").await.unwrap();
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

#[tokio::test]
async fn an_echo_reaches_the_receivers_socket_too() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let bob = sandbox.handle.account("bob").unwrap().clone();
    let (mut alice_ws, _) = open(&sandbox, &a, None, "pbbp2").await.unwrap();
    let (mut bob_ws, _) = open(&sandbox, &bob, None, "pbbp2").await.unwrap();
    let payload = send_request(&sandbox, &a, 0, 10001, &new_id(21)).encode_to_vec();
    alice_ws
        .send(WsMessage::Binary(
            im_frame(&payload, 10001, 1, Vec::new())
                .encode_to_vec()
                .into(),
        ))
        .await
        .unwrap();
    let push = next_binary(&mut bob_ws).await;
    let notify = frame_response(&push).unwrap();
    assert_eq!(
        notify.body.unwrap().has_new_message_notify[0]
            .message
            .as_ref()
            .unwrap()
            .sender,
        Some(a.uid.get())
    );
}
