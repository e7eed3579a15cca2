//! The gateway killed (SIGKILL) in the middle of a burst and started again on
//! the same database: every accepted message is delivered exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use tiktok_dm_store::{SqliteStore, Store as _};

use crate::{args, json, run, spawn_ready_with_env};

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_mid_burst_delivers_every_accepted_message_exactly_once_after_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    // Every acknowledgement takes 400 ms, so the kill finds sends in flight:
    // stored by TikTok, not yet recorded by the gateway.
    sandbox
        .handle
        .delay_acks(Duration::from_millis(400), 10_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let created = run(
        args(&[
            "keys",
            "create",
            "--name",
            "burst",
            "--json",
            "--database",
            db,
        ]),
        None,
    )
    .await;
    let key = json(&created)["key"].as_str().unwrap().to_owned();
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        db,
        "--sandbox-url",
        &sandbox.base_url(),
    ];
    // A one-second lease: after the restart, the rows the dead process held
    // come back quickly.
    let env = [("TIKTOK_DM_LEASE_SECS", "1")];
    let (mut first, ready) = spawn_ready_with_env(&serve, &env).await;
    let url = ready["url"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let c = &sandbox.handle.seed().conversations[0];
    let mut posts = Vec::new();
    for i in 0..40 {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let body = serde_json::json!({"conversation_id": c.conversation_id.to_string(), "conversation_short_id": c.conversation_short_id.get(), "text": format!("burst {i}")});
        posts.push(tokio::spawn(async move {
            let resp = http
                .post(format!("{url}/v1/messages"))
                .bearer_auth(&key)
                .header("x-tiktok-session", "sandbox-session-alice")
                .header("prefer", "respond-async")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            resp.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut accepted = Vec::new();
    for p in posts {
        accepted.push(p.await.unwrap());
    }
    let expected: BTreeSet<String> = accepted
        .iter()
        .map(|a| {
            a["messages"][0]["client_message_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(expected.len(), 40);
    for _ in 0..500 {
        if !sandbox.handle.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    let _ = first.wait();
    let store = SqliteStore::open(db).await.unwrap();
    let left = store.outbox_depth().await.unwrap();
    assert!(left > 0, "the kill came before every message was recorded");
    drop(store);

    let (mut second, ready) = spawn_ready_with_env(&serve, &env).await;
    let url = ready["url"].as_str().unwrap().to_owned();
    for a in &accepted {
        let id = a["id"].as_str().unwrap();
        let mut state = serde_json::Value::Null;
        for _ in 0..300 {
            let status: serde_json::Value = http
                .get(format!("{url}/v1/messages/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            state = status["messages"][0]["state"].clone();
            if state == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "sent", "request {id}");
    }
    second.kill().unwrap();
    let _ = second.wait();
    let received = sandbox.handle.messages();
    let delivered: Vec<String> = received
        .iter()
        .map(|m| m.client_message_id.clone())
        .collect();
    assert_eq!(delivered.len(), 40, "each message stored once");
    assert_eq!(delivered.into_iter().collect::<BTreeSet<_>>(), expected);
}
