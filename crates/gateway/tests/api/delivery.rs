//! The outbox under trouble: an upstream outage, and per-account pacing.

use std::time::Duration;

use crate::{spawn_app_behind_proxy, spawn_app_with};

/// Waits until the sandbox holds `n` messages (or gives up after `secs`).
async fn until_received(app: &crate::TestApp, n: usize, secs: u64) {
    for _ in 0..secs * 50 {
        if app.sandbox.handle.messages().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_accepted_while_tiktok_is_down_are_delivered_once_it_is_back() {
    let app = spawn_app_behind_proxy(|s| {
        s.wait_for_delivery = Duration::from_millis(300);
        s.max_attempts = 30;
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    // One delivery first, so the pooled session's socket exists and is cut too.
    let (status, _) = app
        .post(&app.key, &app.body("before the outage"), &[])
        .await;
    assert_eq!(status, 200);
    proxy.down();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = app
            .post(&app.key, &app.body(&format!("during the outage {i}")), &[])
            .await;
        assert_eq!(status, 202, "accepted, not delivered: {body}");
        assert_eq!(body["message"], "accepted; delivery in progress");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let ready = app.get_json("/readyz", None).await;
    assert_eq!(ready["outbox_depth"], 5);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.sandbox.handle.messages().len(),
        1,
        "nothing got through"
    );
    proxy.up();
    until_received(&app, 6, 30).await;
    let received = app.sandbox.handle.messages();
    assert_eq!(received.len(), 6);
    let texts: Vec<_> = received[1..]
        .iter()
        .map(|m| m.content["text"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..5)
            .map(|i| format!("during the outage {i}"))
            .collect::<Vec<_>>()
    );
    for id in ids {
        let status = app
            .get_json(&format!("/v1/messages/{id}"), Some(&app.key))
            .await;
        assert_eq!(status["success"], true, "{status}");
        assert_eq!(status["messages"][0]["state"], "sent");
    }
}

#[tokio::test]
async fn one_accounts_sends_are_spaced_by_the_pacing_interval() {
    let app = spawn_app_with(|s| {
        s.pacing = tiktok_dm_gateway::config::Pacing {
            min_interval: Duration::from_millis(250),
            jitter: Duration::from_millis(50),
        };
    })
    .await;
    let mut tasks = Vec::new();
    let app = std::sync::Arc::new(app);
    for i in 0..4 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                &app.key,
                &app.body(&format!("paced {i}")),
                &[("prefer", "respond-async")],
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    until_received(&app, 4, 10).await;
    let mut at: Vec<i64> = app
        .sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.received_at_ms)
        .collect();
    assert_eq!(at.len(), 4);
    at.sort_unstable();
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= 240,
            "sends of one account at least the interval apart: {at:?}"
        );
    }
}
