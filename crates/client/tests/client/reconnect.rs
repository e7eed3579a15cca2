//! The frontier socket's reconnect backoff holds while sends keep coming.

use tiktok_dm_client::{ConnectionState, Transport, TransportMode};
use tiktok_dm_sandbox::Fault;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{alice_bob, connect};

/// Refusals scripted for the test: more than it can use.
const REFUSALS: u32 = 1_000;

/// Handshakes attempted so far: the scripted refusals used up.
fn handshake_attempts(sandbox: &TestSandbox) -> u32 {
    let left = sandbox
        .handle
        .faults()
        .iter()
        .find(|f| f.fault == Fault::RefuseHandshake)
        .and_then(|f| f.times)
        .unwrap_or(0);
    REFUSALS - left
}

#[tokio::test]
async fn sends_while_the_socket_backs_off_go_over_http_without_connecting_for_each() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.refuse_handshake(REFUSALS);
    let session = connect(&sandbox, TransportMode::Auto).await;
    assert!(matches!(
        session.connection_state(),
        Some(ConnectionState::Disconnected { .. })
    ));
    const SENDS: u32 = 20;
    for i in 0..SENDS {
        let sent = session
            .send_text(&alice_bob(&sandbox), &format!("during the backoff {i}"))
            .await
            .unwrap();
        assert_eq!(sent.transport, Transport::Http);
    }
    // The first attempt, then only the backoff schedule's (0.25 s, then
    // doubling): a send does not bring the next attempt forward.
    let attempts = handshake_attempts(&sandbox);
    assert!(
        attempts < SENDS / 2,
        "{attempts} handshake attempts for {SENDS} sends"
    );
    assert_eq!(sandbox.handle.messages().len(), SENDS as usize);
}
