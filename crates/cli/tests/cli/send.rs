//! `tiktok-dm send`: success, every input error, and failures from TikTok.

use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{args, json, run};

fn send_args(sandbox: &TestSandbox, session: &str, text: &str) -> Vec<String> {
    let c = &sandbox.handle.seed().conversations[0];
    args(&[
        "send",
        "--sandbox",
        &sandbox.base_url(),
        "--session",
        session,
        "--conversation-id",
        c.conversation_id.as_str(),
        "--conversation-short-id",
        &c.conversation_short_id.to_string(),
        "--text",
        text,
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_prints_the_result_and_the_message_reaches_the_sandbox() {
    let sandbox = spawn_sandbox().await;
    let out = run(
        send_args(&sandbox, "sandbox-session-alice", "from the CLI"),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["success"], true);
    assert_eq!(v["quota"], serde_json::Value::Null);
    assert_eq!(v["usage"]["messages"], 1);
    let m = &v["messages"][0];
    assert_eq!(m["kind"], "text");
    let received = sandbox.handle.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(
        m["client_message_id"],
        received[0].client_message_id.as_str()
    );
    assert_eq!(
        m["server_message_id"],
        received[0].server_message_id.to_string()
    );
    assert_eq!(received[0].content["text"], "from the CLI");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_can_come_from_a_file_or_standard_input() {
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.json");
    std::fs::write(
        &file,
        r#"[{"name":"sessionid","value":"sandbox-session-alice","domain":".tiktok.com"}]"#,
    )
    .unwrap();
    let out = run(
        send_args(&sandbox, &format!("@{}", file.display()), "file"),
        None,
    )
    .await;
    assert_eq!(
        json(&out)["success"],
        true,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        send_args(&sandbox, "-", "stdin"),
        Some("sessionid=sandbox-session-alice\n".into()),
    )
    .await;
    assert_eq!(
        json(&out)["success"],
        true,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sandbox.handle.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_session_exits_1_without_printing_the_session() {
    let sandbox = spawn_sandbox().await;
    let secret = "definitely-not-a-session-4242";
    let out = run(send_args(&sandbox, secret, "x"), None).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], "session_rejected");
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !everything.contains(secret),
        "the session leaked: {everything}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_business_rejection_carries_tiktoks_code_and_tip() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.message_request_limit(1);
    let out = run(send_args(&sandbox, "sandbox-session-alice", "x"), None).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "business_rejected");
    assert_eq!(v["error"]["tiktok_code"], 7193);
    assert_eq!(v["error"]["retry"], "permanent");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("accepts your message request"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_exit_2_with_a_specific_message() {
    let sandbox = spawn_sandbox().await;
    let alice = "sandbox-session-alice";
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            send_args(&sandbox, alice, ""),
            "either text or image must be provided",
        ),
        (
            send_args(&sandbox, alice, &"y".repeat(6001)),
            "the limit is 6000",
        ),
        (
            send_args(&sandbox, "@/nonexistent/session.txt", "x"),
            "cannot read session file /nonexistent/session.txt",
        ),
        // A device has no size to check first: the read stops at the ceiling.
        (
            send_args(&sandbox, "@/dev/zero", "x"),
            "session file /dev/zero is larger than 1048576 bytes",
        ),
    ];
    let mut no_id = send_args(&sandbox, alice, "x");
    no_id.drain(5..7);
    cases.push((no_id, "missing conversation id"));
    let mut bad_short = send_args(&sandbox, alice, "x");
    bad_short[8] = "12x".into();
    cases.push((bad_short, "conversation short id must be a decimal number"));
    let mut bad_transport = send_args(&sandbox, alice, "x");
    bad_transport.extend(["--transport".to_owned(), "carrier-pigeon".to_owned()]);
    cases.push((bad_transport, "unknown transport \"carrier-pigeon\""));
    for (argv, expected) in cases {
        let out = run(argv, None).await;
        assert_eq!(out.status.code(), Some(2), "case {expected}");
        let v = json(&out);
        assert_eq!(v["error"]["code"], "invalid_input", "case {expected}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(expected));
    }
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_a_connection_failure() {
    let mut sandbox = spawn_sandbox().await;
    let argv = send_args(&sandbox, "sandbox-session-alice", "x");
    sandbox.stop().await;
    let out = run(argv, None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "connection_failed");
}
