//! Each delivery failure and limit answers with its own code and status.

use std::time::Duration;

use serde_json::json;

use crate::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_session_tiktok_does_not_know_is_422_session_rejected() {
    let app = spawn_app_with(|_| {}).await;
    let (status, body) = app
        .post(
            &app.key,
            &app.body("x"),
            &[("x-tiktok-session", "sandbox-session-nobody")],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("session_rejected")),
        "{body}"
    );
    assert!(app.sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn no_answer_from_tiktok_until_the_attempts_run_out_is_504_outcome_unknown() {
    let app = spawn_app_with(|s| {
        s.max_attempts = 2;
        s.send_timeout = Duration::from_millis(150);
        s.transport = tiktok_dm_client::TransportMode::Ws;
        s.wait_for_delivery = Duration::from_secs(10);
    })
    .await;
    app.sandbox.handle.drop_acks(1_000);
    let (status, body) = app.post(&app.key, &app.body("maybe"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("outcome_unknown")),
        "{body}"
    );
    assert_eq!(body["messages"][0]["state"], "unknown");
    // TikTok stored it once, although it was sent more than once (same client id).
    let stored = app.sandbox.handle.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].client_message_id,
        body["messages"][0]["client_message_id"].as_str().unwrap()
    );
    // It may have been delivered, so it keeps counting against the quota.
    assert_eq!(body["usage"]["totals"]["messages"], 1);
}

#[tokio::test]
async fn rate_limiting_by_tiktok_past_the_last_attempt_is_429_upstream_rate_limited() {
    let app = spawn_app_with(|s| s.max_attempts = 1).await;
    app.sandbox.handle.rate_limit(1_000);
    let (status, body) = app.post(&app.key, &app.body("x"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("upstream_rate_limited")),
        "{body}"
    );
}

#[tokio::test]
async fn limits_on_the_request_itself() {
    let app = spawn_app_with(|s| {
        s.image_limit = 1024;
        s.request_timeout = Duration::from_millis(400);
        s.wait_for_delivery = Duration::from_secs(5);
    })
    .await;
    let long = "x".repeat(6_001);
    let (status, body) = app.post(&app.key, &app.body(&long), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("text_too_long")),
        "{body}"
    );
    // The body limit follows the image limit: 1 KiB of image allows about 65 KiB.
    let huge = json!({"conversation_id": "x", "text": "y".repeat(200_000)});
    let (status, body) = app.post(&app.key, &huge, &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    // A send still waiting when the request timeout comes is accepted: it
    // is answered 202 with its id, never 408, and goes out all the same.
    app.sandbox.handle.delay_acks(Duration::from_secs(2), 1);
    let (status, body) = app.post(&app.key, &app.body("slow"), &[]).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let status_url = format!("/v1/messages/{id}");
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        answer = app.get_json(&status_url, Some(&app.key)).await;
        if answer["messages"][0]["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer["messages"][0]["state"], "sent", "{answer}");
}

/// A raw HTTP/1.1 send whose body is chunked and written by the caller: the
/// connection, after its head.
async fn chunked_send(app: &crate::TestApp, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\nX-TikTok-Session: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::ALICE,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Writes `bytes` as one chunk.
async fn chunk(stream: &mut tokio::net::TcpStream, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt as _;
    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
    framed.extend_from_slice(bytes);
    framed.extend_from_slice(b"\r\n");
    stream.write_all(&framed).await.unwrap();
}

/// The status line's code and the body of the answer on `stream`, within `secs`.
async fn answer_within(stream: &mut tokio::net::TcpStream, secs: u64) -> (u16, String) {
    use tokio::io::AsyncReadExt as _;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(secs), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

/// A send whose body takes longer to arrive than the request timeout, but is
/// accepted, is answered with its id: the wait ends by the same deadline.
#[tokio::test]
async fn a_send_accepted_late_in_its_time_is_answered_with_its_id_not_408() {
    let app = spawn_app_with(|s| {
        s.request_timeout = Duration::from_millis(800);
        s.wait_for_delivery = Duration::from_secs(5);
    })
    .await;
    app.sandbox.handle.delay_acks(Duration::from_secs(2), 1);
    let mut stream = chunked_send(&app, &app.key).await;
    let body = serde_json::to_vec(&app.body("arrives slowly")).unwrap();
    let (first, rest) = body.split_at(10);
    chunk(&mut stream, first).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    chunk(&mut stream, rest).await;
    chunk(&mut stream, b"").await;
    let (status, text) = answer_within(&mut stream, 5).await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("\"id\":\"req_"), "{text}");
}

/// A body that never finishes arriving is cut off at the request timeout:
/// 408, and nothing is kept.
#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_at_the_request_timeout() {
    let app = spawn_app_with(|s| s.request_timeout = Duration::from_millis(500)).await;
    let mut stream = chunked_send(&app, &app.key).await;
    chunk(&mut stream, b"{\"conversation_id\"").await;
    let (status, text) = answer_within(&mut stream, 5).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    let ready = app.get_json("/readyz", None).await;
    assert_eq!(ready["outbox_depth"], 0);
}

/// A key whose quota is used up is refused before its body is read: the
/// answer comes while the body has not even started.
#[tokio::test]
async fn a_key_over_its_quota_is_refused_before_its_body_is_read() {
    let app = spawn_app().await;
    let key = app.key_with_limit("one a day", Some(1)).await;
    let (status, body) = app.post(&key, &app.body("the only one"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let mut stream = chunked_send(&app, &key).await;
    let (status, text) = answer_within(&mut stream, 5).await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("quota_exceeded"), "{text}");
}
