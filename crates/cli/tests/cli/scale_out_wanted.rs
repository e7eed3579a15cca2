//! A send accepted by the gateway that does not own its lane, on a database
//! two `tiktok-dm serve` processes share (issue 19): the lane's gateway hears
//! of it at once (`tiktok_dm_lanes`), takes the lane and delivers, rather than
//! at its next ownership tick. The helpers are `scale_out.rs`'s.

use std::time::{Duration, Instant};

use tiktok_dm_gateway::ownership::target;
use tiktok_dm_gateway::pool::request_key;
use tiktok_dm_sandbox::Seed;
use tiktok_dm_test_support::postgres::PgSchema;

use crate::scale_out::*;

/// A lease of 30 s: a tick every 10 s, so a lane taken only at a tick would
/// wait up to 10 s (and the gateways still see each other within
/// `until_all_see`'s 15 s).
const LONG_LEASE: [(&str, &str); 1] = [("TIKTOK_DM_OWNER_LEASE_SECS", "30")];
/// Per-request sessions sent as, one send each.
const USERS: u32 = 6;
/// The longest a send may take to be delivered: far below a tick.
const WITHIN: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread")]
async fn a_new_session_sent_through_the_gateway_it_does_not_belong_to_is_delivered_at_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = schema.url.as_str();
    let sandbox =
        tiktok_dm_test_support::spawn_sandbox_with(Seed::with_crowd(USERS).unwrap()).await;
    let seed = sandbox.handle.seed().clone();
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(db, "wanted", &[]).await;
    let url = sandbox.base_url();
    let a = Gateway::start(db, &url, &LONG_LEASE, dir.path().join("a.log")).await;
    let b = Gateway::start(db, &url, &LONG_LEASE, dir.path().join("b.log")).await;
    let http = reqwest::Client::new();
    until_all_see(&http, &[&a, &b]).await;
    let live = vec![a.id.clone(), b.id.clone()];

    let mut took = Vec::new();
    for i in 1..=USERS {
        let user = sandbox.handle.account(&format!("user-{i}")).unwrap();
        let lane = request_key(&user.session);
        // Through the gateway the lane is not the share of.
        let through = if target(&lane, &live) == Some(a.id.as_str()) {
            &b
        } else {
            &a
        };
        let body = text_to(&conversation_of(&seed, user.uid), &format!("wanted {i}"));
        let started = Instant::now();
        let (status, answer) = post(&http, &through.url, &key, Some(&user.session), &body)
            .await
            .unwrap();
        assert_eq!(status, 202, "{answer}");
        let id = client_message_id(&answer);
        loop {
            if sandbox
                .handle
                .messages()
                .iter()
                .any(|m| m.client_message_id == id)
            {
                break;
            }
            assert!(
                started.elapsed() < WITHIN,
                "user-{i}'s send through {} not delivered within {WITHIN:?}; sent so far in {took:?}",
                through.id
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        took.push(started.elapsed().as_millis());
    }
    eprintln!("delivered after (ms): {took:?}");
    // Each lane went to the gateway it belongs to.
    let leases = live_leases(&schema).await;
    for i in 1..=USERS {
        let user = sandbox.handle.account(&format!("user-{i}")).unwrap();
        let lane = request_key(&user.session);
        if let Some(owner) = leases.get(&lane) {
            assert_eq!(Some(owner.as_str()), target(&lane, &live), "{lane}");
        }
    }
}
