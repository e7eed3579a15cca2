//! The gateway killed (SIGKILL) during a burst of 1,000 inbound messages and
//! started again on the same database: the event log holds every message
//! exactly once (issue 18). Those pushed while it was down, or pushed but
//! not yet logged when it died, are caught up from TikTok's history.

use std::collections::BTreeSet;
use std::time::Duration;

use tiktok_dm_store::{EventFilter, SqliteStore, Store as _};

use crate::{add_account, spawn_ready_with_env};

const BURST: usize = 1000;

async fn logged_texts(db: &str) -> Vec<String> {
    let store = SqliteStore::open(db).await.unwrap();
    let filter = EventFilter {
        types: Some(vec!["message.received".into()]),
        ..EventFilter::default()
    };
    let mut texts = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, &filter, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        for e in &page {
            let data: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            texts.push(data["text"].as_str().unwrap_or_default().to_owned());
        }
    }
    texts
}

async fn until_socket(sandbox: &tiktok_dm_test_support::TestSandbox, n: u64) {
    for _ in 0..500 {
        if sandbox.handle.handshakes() >= n {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway did not connect");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_during_an_inbound_burst_logs_every_message_once_after_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let added = add_account(db, "shop", "sandbox-session-alice", &[]).await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        db,
        "--sandbox-url",
        &sandbox.base_url(),
    ];
    let (mut first, _) = spawn_ready_with_env(&serve, &[]).await;
    until_socket(&sandbox, 1).await;

    let http = reqwest::Client::new();
    let inbound = format!("{}/_sandbox/inbound", sandbox.base_url());
    let conversation = sandbox.handle.seed().conversations[0]
        .conversation_id
        .to_string();
    let mut killed = false;
    for i in 0..BURST {
        let body = serde_json::json!({"from": "bob", "conversation_id": conversation, "text": format!("inbound {i}")});
        let answer = http.post(&inbound).json(&body).send().await.unwrap();
        assert!(answer.status().is_success());
        if i == BURST / 3 {
            first.kill().unwrap();
            let _ = first.wait();
            killed = true;
        }
    }
    assert!(killed);
    let before_restart = logged_texts(db).await.len();
    assert!(
        before_restart < BURST,
        "the kill came mid-burst ({before_restart} logged)"
    );

    let (mut second, _) = spawn_ready_with_env(&serve, &[]).await;
    for _ in 0..300 {
        if logged_texts(db).await.len() >= BURST {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer: nothing logged twice turns up late either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = logged_texts(db).await;
    second.kill().unwrap();
    let _ = second.wait();
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(
        unique.len(),
        BURST,
        "every message logged ({} of {BURST})",
        unique.len()
    );
    assert_eq!(texts.len(), BURST, "none logged twice");
}
