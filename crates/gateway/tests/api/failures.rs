//! Each delivery failure and limit answers with its own code and status.

use std::time::Duration;

use serde_json::json;

use crate::{spawn_app_behind_proxy, spawn_app_with};

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
async fn tiktok_unreachable_until_the_attempts_run_out_is_502_upstream_unavailable() {
    let app = spawn_app_behind_proxy(|s| {
        s.max_attempts = 2;
        s.wait_for_delivery = Duration::from_secs(10);
    })
    .await;
    app.proxy.as_ref().unwrap().down();
    let (status, body) = app.post(&app.key, &app.body("x"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{body}"
    );
    assert_eq!(body["messages"][0]["state"], "failed");
    // The failed message gave its quota reservation back.
    assert_eq!(body["usage"]["totals"]["messages"], 0);
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
    // A send still waiting when the request timeout comes is answered 408.
    app.sandbox.handle.delay_acks(Duration::from_secs(2), 1);
    let (status, body) = app.post(&app.key, &app.body("slow"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (408, Some("request_timeout")),
        "{body}"
    );
}
