//! The webhook queue under pressure, end to end: an endpoint that hangs does
//! not hold back another webhook, a replay of old events gets a whole retry
//! window, and creates at once keep a key within its webhook limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tiktok_dm_gateway::webhooks::MAX_PER_KEY;
use tiktok_dm_gateway::webhooks::deliver::PER_WEBHOOK;

use crate::spawn_app_with;
use crate::webhooks::{Receiver, any_key, app, append, append_at, call, create};

/// An endpoint that accepts every connection, reads nothing and never
/// answers; its URL and how many connections it has taken.
async fn hanging_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

/// Waits until `accepted` reaches `n` (or 10 s pass).
async fn until_accepted(accepted: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A webhook whose endpoint takes the post and hangs, with a backlog longer
/// than all of `webhook_concurrency`, holds only its share of the slots for
/// the whole `webhook_timeout_ms`: another webhook's events, logged after
/// the backlog, arrive at once.
#[tokio::test]
async fn an_endpoint_that_hangs_does_not_hold_back_another_webhook() {
    let app = spawn_app_with(|s| {
        s.allow_private_webhooks = true;
        s.webhook_timeout = Duration::from_secs(30);
    })
    .await;
    let backlog = 30;
    assert!(backlog > default_concurrency(), "more than every slot");
    let (hanging, accepted) = hanging_endpoint().await;
    let slow_key = any_key(&app.store, "slow").await;
    let (status, _) = create(&app, &slow_key, &hanging, &["message.received"]).await;
    assert_eq!(status, 201);
    for i in 0..backlog {
        append(&app.store, &format!("backlog {i}")).await;
    }
    until_accepted(&accepted, PER_WEBHOOK as usize).await;

    let quick_key = any_key(&app.store, "quick").await;
    let receiver = Receiver::spawn(&[]).await;
    let (status, _) = create(&app, &quick_key, &receiver.url, &["message.received"]).await;
    assert_eq!(status, 201);
    let started = Instant::now();
    for i in 0..3 {
        append(&app.store, &format!("news {i}")).await;
    }
    let got = receiver.until(3, 5).await;
    assert_eq!(
        got.len(),
        3,
        "the other webhook got {} of its 3 deliveries in {:?}, while the hanging endpoint had {} connections",
        got.len(),
        started.elapsed(),
        accepted.load(Ordering::SeqCst)
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        PER_WEBHOOK as usize,
        "the hanging endpoint holds its share of the slots, no more"
    );
}

/// The default `webhook_concurrency`.
fn default_concurrency() -> usize {
    let endpoints = tiktok_dm_client::Endpoints::sandbox("http://127.0.0.1:9").unwrap();
    tiktok_dm_gateway::Settings::new(endpoints).webhook_concurrency
}

/// A replay of an event logged longer ago than `webhook_max_age_hours` is
/// tried again after a failure: its window starts at the replay, not at
/// the event.
#[tokio::test]
async fn a_replay_of_an_old_event_is_retried_like_a_new_one() {
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let hours_ago = tiktok_dm_gateway::now_ms() - 25 * 3_600_000;
    let cursor = append_at(&app.store, "from yesterday", hours_ago).await;
    let receiver = Receiver::spawn(&[500]).await;
    let (status, created) = create(&app, &key, &receiver.url, &["message.received"]).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/webhooks/{}/replay", created["id"].as_str().unwrap());
    let since = json!({"since": cursor - 1}).to_string();
    let (status, answer) = call(&app, reqwest::Method::POST, &path, &key, Some(&since)).await;
    assert_eq!(
        (status, answer["queued"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    let got = receiver.until(2, 10).await;
    let ids: Vec<String> = got.iter().map(|c| c.header("webhook-id")).collect();
    assert_eq!(
        ids,
        [format!("evt_{cursor}"), format!("evt_{cursor}")],
        "the 500, then a retry that took it"
    );
}

/// Creates of one key at once store exactly `MAX_PER_KEY` webhooks; the
/// others are 409 `webhook_limit_reached`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_at_once_keep_a_key_within_its_webhook_limit() {
    let app = Arc::new(app().await);
    let key = any_key(&app.store, "hooks").await;
    let tries = 2 * MAX_PER_KEY as usize;
    let creates: Vec<_> = (0..tries)
        .map(|i| {
            let (app, key) = (Arc::clone(&app), key.clone());
            tokio::spawn(async move {
                let url = format!("http://127.0.0.1:9/{i}");
                create(&app, &key, &url, &["typing"]).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in creates {
        let (status, answer) = c.await.unwrap();
        if status == 409 {
            assert_eq!(answer["error"]["code"], "webhook_limit_reached", "{answer}");
        }
        statuses.push(status);
    }
    let stored = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(
        (stored, refused),
        (MAX_PER_KEY as usize, tries - MAX_PER_KEY as usize),
        "{statuses:?}"
    );
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(
        listed["webhooks"].as_array().unwrap().len(),
        MAX_PER_KEY as usize
    );
}
