//! `tiktok-dm listen` and `tiktok-dm conversations` against a sandbox.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{command, run};

fn alice_args(sandbox: &TestSandbox, verb: &str) -> Vec<String> {
    [
        verb,
        "--session",
        "sandbox-session-alice",
        "--sandbox",
        &sandbox.base_url(),
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn inbound(sandbox: &TestSandbox, body: Value) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(format!("{}/_sandbox/inbound", sandbox.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn conversation_id(sandbox: &TestSandbox) -> String {
    sandbox.handle.seed().conversations[0]
        .conversation_id
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn listen_prints_one_json_line_per_event_as_it_comes() {
    let sandbox = spawn_sandbox().await;
    let mut child = command()
        .args(alice_args(&sandbox, "listen"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    // Wait until it listens, off the runtime (the sandbox serves on it).
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        line
    });
    let ready = tokio::time::timeout(Duration::from_secs(20), ready)
        .await
        .unwrap()
        .unwrap();
    assert!(ready.starts_with("listening as uid"), "{ready}");

    let conversation = conversation_id(&sandbox);
    inbound(
        &sandbox,
        serde_json::json!({"from": "bob", "conversation_id": conversation, "typing": true}),
    )
    .await;
    let sent = inbound(&sandbox, serde_json::json!({"from": "bob", "conversation_id": conversation, "text": "are you there?"})).await;

    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let typing: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(typing["type"], "typing");
    let bob_uid = sandbox.handle.account("bob").unwrap().uid.to_string();
    assert_eq!(typing["uid"], bob_uid.as_str());
    let message: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(message["type"], "message.received");
    assert_eq!(message["direction"], "inbound");
    assert_eq!(message["kind"], "text");
    assert_eq!(message["text"], "are you there?");
    assert_eq!(message["sender_uid"], bob_uid.as_str());
    assert_eq!(message["conversation_id"], conversation.as_str());
    assert_eq!(
        message["server_message_id"],
        sent["messages"][0]["server_message_id"]
    );
}

#[tokio::test]
async fn conversations_prints_the_list_and_a_conversations_history() {
    let sandbox = spawn_sandbox().await;
    let conversation = conversation_id(&sandbox);
    for text in ["one", "two", "three"] {
        inbound(
            &sandbox,
            serde_json::json!({"from": "bob", "conversation_id": conversation, "text": text}),
        )
        .await;
    }
    let out = run(alice_args(&sandbox, "conversations"), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let seed = sandbox.handle.seed();
    let with_bob = list
        .iter()
        .find(|c| c["conversation_id"] == conversation.as_str())
        .unwrap();
    assert_eq!(
        with_bob["conversation_short_id"],
        seed.conversations[0]
            .conversation_short_id
            .to_string()
            .as_str()
    );
    assert_eq!(with_bob["message_request"], false);
    assert_eq!(with_bob["last_message"]["text"], "three");

    let mut args = alice_args(&sandbox, "conversations");
    args.extend([
        "--history".into(),
        conversation.clone(),
        "--limit".into(),
        "2".into(),
    ]);
    let out = run(args, None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let texts: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three", "two"]);
}

#[tokio::test]
async fn listen_and_conversations_refuse_bad_arguments_and_sessions_clearly() {
    let sandbox = spawn_sandbox().await;
    let out = run(
        vec!["listen".into(), "--sandbox".into(), sandbox.base_url()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing TikTok session"));

    let mut args = alice_args(&sandbox, "conversations");
    args.extend(["--history".into(), "x".into(), "--limit".into(), "0".into()]);
    let out = run(args, None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--limit must be between 1 and 1000"));

    let mut args = alice_args(&sandbox, "conversations");
    args[2] = "not-a-seeded-session".into();
    let out = run(args, None).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(
        !stderr.contains("not-a-seeded-session"),
        "the session is never printed: {stderr}"
    );
}
