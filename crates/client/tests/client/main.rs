//! The client against the sandbox over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod failures;
mod heartbeat;
mod images;
mod listen;
mod media;
mod reconnect;
mod send;
mod sigv4;
mod upload_urls;

use std::time::Duration;

use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target, TransportMode};
use tiktok_dm_test_support::TestSandbox;

pub const ALICE: &str = "sandbox-session-alice";

pub fn config(
    sandbox: &TestSandbox,
    session: &str,
    transport: TransportMode,
) -> tiktok_dm_client::ConfigBuilder {
    Config::builder(Credentials::parse(session).unwrap())
        .endpoints(Endpoints::sandbox(&sandbox.base_url()).unwrap())
        .transport(transport)
        .request_timeout(Duration::from_millis(500))
}

pub async fn connect(sandbox: &TestSandbox, transport: TransportMode) -> Session {
    Session::connect(config(sandbox, ALICE, transport).build().unwrap())
        .await
        .unwrap()
}

/// alice's accepted conversation with bob.
pub fn alice_bob(sandbox: &TestSandbox) -> Target {
    let c = &sandbox.handle.seed().conversations[0];
    Target::parse(
        c.conversation_id.as_str(),
        &c.conversation_short_id.to_string(),
    )
    .unwrap()
}

/// alice's message request to carol (not accepted yet).
pub fn alice_carol(sandbox: &TestSandbox) -> Target {
    let c = &sandbox.handle.seed().conversations[1];
    let mut t = Target::parse(
        c.conversation_id.as_str(),
        &c.conversation_short_id.to_string(),
    )
    .unwrap();
    t.inbox_type = c.inbox_type;
    t
}
