//! Heartbeats and idle reconnects, under paused time (the sandbox runs in the
//! same runtime, so its sockets and the client's timers share one clock).

use std::time::Duration;

use tiktok_dm_client::{ConnectionState, TransportMode};
use tiktok_dm_test_support::spawn_sandbox;

use crate::{alice_bob, connect};

#[tokio::test(start_paused = true)]
async fn a_quiet_socket_says_hi_and_stays_connected_while_the_server_answers() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(
        sandbox.handle.heartbeats() >= 3,
        "heartbeats: {}",
        sandbox.handle.heartbeats()
    );
    assert_eq!(
        sandbox.handle.handshakes(),
        1,
        "no reconnect while heartbeats are answered"
    );
    assert_eq!(session.connection_state(), Some(ConnectionState::Active));
}

#[tokio::test(start_paused = true)]
async fn an_idle_socket_whose_heartbeats_go_unanswered_is_replaced() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.mute_heartbeats(1);
    tokio::time::sleep(Duration::from_secs(35)).await;
    session.wait_until_connected().await;
    assert_eq!(
        sandbox.handle.handshakes(),
        2,
        "the idle socket was replaced"
    );
    session
        .send_text(&alice_bob(&sandbox), "after the reconnect")
        .await
        .unwrap();
    assert_eq!(sandbox.handle.messages().len(), 1);
}
