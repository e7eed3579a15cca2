//! Successful sends over each transport, the echo push, and fallback.

use tiktok_dm_client::{ConnectionState, Session, Transport, TransportMode};
use tiktok_dm_sandbox::Transport as SandboxTransport;
use tiktok_dm_test_support::spawn_sandbox;

use crate::{ALICE, alice_bob, config, connect};

#[tokio::test]
async fn a_text_sent_over_the_websocket_arrives_in_the_sandbox_and_is_echoed_back() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    assert_eq!(session.connection_state(), Some(ConnectionState::Active));
    assert_eq!(
        session.identity().uid,
        sandbox.handle.account("alice").unwrap().uid
    );
    let mut pushes = session.subscribe();

    let sent = session
        .send_text(&alice_bob(&sandbox), "hello bob ✓ \"quoted\"")
        .await
        .unwrap();

    assert_eq!(sent.transport, Transport::Ws);
    let received = sandbox.handle.messages();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m.client_message_id, sent.client_message_id.as_str());
    assert_eq!(m.server_message_id, sent.server_message_id.get());
    assert_eq!(
        m.content,
        serde_json::json!({"aweType": 0, "text": "hello bob ✓ \"quoted\""})
    );
    assert_eq!(m.message_type, 7);
    assert_eq!(m.transport, SandboxTransport::Ws);
    let echo = tokio::time::timeout(std::time::Duration::from_secs(5), pushes.recv())
        .await
        .unwrap()
        .unwrap();
    let tiktok_dm_client::Event::MessageReceived(echo) = echo else {
        panic!("{echo:?}")
    };
    assert_eq!(
        echo.client_message_id.as_deref(),
        Some(sent.client_message_id.as_str())
    );
    assert_eq!(echo.server_message_id, sent.server_message_id.get());
    assert_eq!(echo.sender_uid, session.identity().uid.get());
    assert_eq!(echo.direction, tiktok_dm_client::Direction::Outbound);
    assert_eq!(echo.text.as_deref(), Some("hello bob ✓ \"quoted\""));
}

#[tokio::test]
async fn the_http_transport_sends_without_opening_a_socket() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    assert_eq!(session.connection_state(), None);
    let sent = session
        .send_text(&alice_bob(&sandbox), "over http")
        .await
        .unwrap();
    assert_eq!(sent.transport, Transport::Http);
    assert_eq!(sandbox.handle.handshakes(), 0);
    let received = sandbox.handle.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].transport, SandboxTransport::Http);
}

#[tokio::test]
async fn auto_falls_back_to_http_when_the_websocket_does_not_answer() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Auto).await;
    sandbox.handle.ws_unanswered(3);
    let sent = session
        .send_text(&alice_bob(&sandbox), "fallback")
        .await
        .unwrap();
    assert_eq!(sent.transport, Transport::Http);
    let received = sandbox.handle.messages();
    assert_eq!(
        received.len(),
        1,
        "the three WS transmissions were ignored, HTTP delivered once"
    );
    assert_eq!(received[0].transport, SandboxTransport::Http);
}

#[tokio::test]
async fn auto_uses_http_when_the_websocket_handshake_is_refused() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.refuse_handshake(100);
    let session = connect(&sandbox, TransportMode::Auto).await;
    assert!(matches!(
        session.connection_state(),
        Some(ConnectionState::Disconnected { .. })
    ));
    let sent = session
        .send_text(&alice_bob(&sandbox), "socket down")
        .await
        .unwrap();
    assert_eq!(sent.transport, Transport::Http);
}

#[tokio::test]
async fn a_lost_ack_is_retransmitted_with_the_same_sequence_id_and_stored_once() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.drop_acks(1);
    let sent = session
        .send_text(&alice_bob(&sandbox), "ack lost once")
        .await
        .unwrap();
    assert_eq!(sent.transport, Transport::Ws);
    let received = sandbox.handle.messages();
    assert_eq!(received.len(), 1, "the retransmission was de-duplicated");
    assert_eq!(received[0].server_message_id, sent.server_message_id.get());
}

#[tokio::test]
async fn the_socket_closed_mid_send_is_reopened_and_the_send_completes() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.close_socket_on_request(1);
    let sent = session
        .send_text(&alice_bob(&sandbox), "through a reconnect")
        .await
        .unwrap();
    assert_eq!(sent.transport, Transport::Ws);
    assert_eq!(sandbox.handle.handshakes(), 2, "one reconnect");
    assert_eq!(sandbox.handle.messages().len(), 1);
    assert_eq!(session.connection_state(), Some(ConnectionState::Active));
}

#[tokio::test]
async fn identity_can_be_given_instead_of_discovered() {
    let sandbox = spawn_sandbox().await;
    let alice = sandbox.handle.account("alice").unwrap().clone();
    let cfg = config(&sandbox, ALICE, TransportMode::Ws)
        .uid(alice.uid)
        .wid(alice.wid.clone())
        .build()
        .unwrap();
    let session = Session::connect(cfg).await.unwrap();
    assert_eq!(session.identity().wid, alice.wid);
    session
        .send_text(&alice_bob(&sandbox), "configured identity")
        .await
        .unwrap();
}

#[tokio::test]
async fn http_sends_carry_a_ticket_guard_that_a_strict_server_accepts() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.require_ticket_guard(true);
    let session = connect(&sandbox, TransportMode::Http).await;
    let target = alice_bob(&sandbox);
    let sent = session.send_text(&target, "guarded").await.unwrap();
    assert_eq!(sent.transport, Transport::Http);
    let png = tiktok_dm_test_support::noise_png(8, 8, 1);
    let image = tiktok_dm_client::image::Image::from_bytes(png, 1 << 20).unwrap();
    session.send_image(&target, image).await.unwrap();
    let kinds: Vec<i32> = sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.message_type)
        .collect();
    assert_eq!(kinds, [7, 1802]);
}
