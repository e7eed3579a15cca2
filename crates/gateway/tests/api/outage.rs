//! Deliveries across an outage and across a lost lease: TikTok unreachable is
//! retried until the delivery deadline (attempts that never reached TikTok do
//! not count against `max_attempts`), and a delivery whose message was
//! claimed again elsewhere does not send it a second time.

use std::time::Duration;

use crate::{TestApp, spawn_app_behind_proxy, spawn_app_with, until_received};

/// The number of attempts the metrics counted with `outcome`, for texts.
async fn sends(app: &TestApp, outcome: &str) -> u64 {
    let metrics = app.get_text("/metrics").await;
    let prefix = format!("tiktok_dm_sends_total{{outcome=\"{outcome}\",kind=\"text\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A request's answer once its first message is final (or after `secs`).
async fn final_answer(app: &TestApp, id: &str, secs: u64) -> serde_json::Value {
    let url = format!("/v1/messages/{id}");
    let mut answer = serde_json::Value::Null;
    for _ in 0..secs * 20 {
        answer = app.get_json(&url, Some(&app.key)).await;
        let state = &answer["messages"][0]["state"];
        if state != "accepted" && state != "sending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answer
}

/// TikTok unreachable: the attempts reach nothing, so they do not count
/// against `max_attempts` (one here); the message is retried until its
/// delivery deadline, then fails as `upstream_unavailable`, its quota given
/// back.
#[tokio::test]
async fn tiktok_unreachable_is_retried_until_the_deadline_not_the_attempt_limit() {
    let app = spawn_app_behind_proxy(|s| {
        s.max_attempts = 1;
        s.delivery_deadline = Duration::from_secs(3);
        s.retry_max_delay = Duration::from_millis(300);
        s.wait_for_delivery = Duration::ZERO;
    })
    .await;
    app.proxy.as_ref().unwrap().down();
    let (status, body) = app.post(&app.key, &app.body("x"), &[]).await;
    assert_eq!(status, 202, "{body}");
    let answer = final_answer(&app, body["id"].as_str().unwrap(), 10).await;
    assert_eq!(answer["messages"][0]["state"], "failed", "{answer}");
    assert_eq!(answer["error"]["code"], "upstream_unavailable", "{answer}");
    assert_eq!(answer["usage"]["totals"]["messages"], 0, "quota given back");
    let retries = sends(&app, "retry").await;
    assert!(retries >= 2, "retried past max_attempts: {retries} retries");
}

/// An outage of 90 s with the default settings: every message accepted
/// during it is delivered once it ends.
#[tokio::test]
async fn a_90_second_outage_with_default_settings_delivers_everything_after() {
    let app = spawn_app_behind_proxy(|s| s.wait_for_delivery = Duration::ZERO).await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.down();
    for i in 0..5 {
        let (status, body) = app
            .post(&app.key, &app.body(&format!("during the outage {i}")), &[])
            .await;
        assert_eq!(status, 202, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert!(
        app.sandbox.handle.messages().is_empty(),
        "nothing got through"
    );
    proxy.up();
    until_received(&app.sandbox, 5, 90).await;
    assert_eq!(app.sandbox.handle.messages().len(), 5);
    assert_eq!(
        sends(&app, "failed").await + sends(&app, "unknown").await,
        0
    );
}

/// A delivery whose lease was lost while it waited for its pacing slot (the
/// row was claimed again elsewhere: here its token is raised behind its back)
/// stops before transmitting; the message goes out once, from the claim that
/// holds it. Without the check, it went out from both.
#[tokio::test]
async fn a_delivery_that_lost_its_lease_does_not_transmit() {
    let app = spawn_app_with(|s| {
        s.lease = Duration::from_secs(6);
        s.pacing = tiktok_dm_gateway::config::Pacing {
            min_interval: Duration::from_millis(2_500),
            jitter: Duration::ZERO,
        };
        s.wait_for_delivery = Duration::ZERO;
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("takes the slot"), &[]).await;
    assert_eq!(status, 202);
    until_received(&app.sandbox, 1, 5).await;
    let (status, body) = app.post(&app.key, &app.body("waits for it"), &[]).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "UPDATE outbox SET claim_token = claim_token + 100 WHERE request_id = ?1",
        [&id],
    )
    .unwrap();
    let answer = final_answer(&app, &id, 20).await;
    assert_eq!(answer["messages"][0]["state"], "sent", "{answer}");
    assert_eq!(app.sandbox.handle.messages().len(), 2);
    assert_eq!(
        sends(&app, "sent").await,
        2,
        "each message transmitted once"
    );
}
