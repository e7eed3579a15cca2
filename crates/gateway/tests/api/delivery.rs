//! The outbox under trouble: an upstream outage, a store that cannot record an
//! outcome yet, and per-account pacing.

use std::time::Duration;

use tiktok_dm_store::Store as _;
use tiktok_dm_store::{ClaimScope, GatewayBeat, LeaseChange, Pace};

use crate::{spawn_app, spawn_app_behind_proxy, spawn_app_with, until_received};

/// A send of `text` with alice's session on a task of its own, for a test
/// that acts while the handler waits: its status and JSON answer.
fn send_in_background(
    app: &crate::TestApp,
    text: &str,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    let request = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", crate::ALICE)
        .json(&app.body(text));
    tokio::spawn(async move {
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    })
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
    until_received(&app.sandbox, 6, 30).await;
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
    until_received(&app.sandbox, 4, 10).await;
    let at = arrivals(&app);
    assert_eq!(at.len(), 4);
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= 240,
            "sends of one account at least the interval apart: {at:?}"
        );
    }
}

/// A send that reaches TikTok late (a slow link: the sandbox takes it
/// 1.5 s after it went, later than the next send's slot) holds the
/// account's next send back to an interval after its answer, also one
/// already claimed for its slot.
#[tokio::test]
async fn a_send_arriving_late_keeps_the_interval_before_its_accounts_next() {
    let app = spawn_paced(Duration::from_millis(1_000)).await;
    app.sandbox
        .handle
        .delay_sends(Duration::from_millis(1_500), 1);
    for i in 0..2 {
        let body = app.body(&format!("late {i}"));
        let (status, _) = app
            .post(&app.key, &body, &[("prefer", "respond-async")])
            .await;
        assert_eq!(status, 202);
    }
    until_received(&app.sandbox, 2, 10).await;
    let at = arrivals(&app);
    assert!(
        at[1] - at[0] >= 990,
        "the next send went {} ms after the late one arrived, at a pacing of 1,000 ms",
        at[1] - at[0]
    );
}

#[tokio::test]
async fn a_waiting_send_sees_the_delivery_another_gateway_made() {
    // Pacing puts the account's next slot past half a lease, so this gateway
    // does not claim the second message yet; no news reaches its handler.
    let app = spawn_app_with(|s| {
        s.pacing = tiktok_dm_gateway::config::Pacing {
            min_interval: Duration::from_secs(100),
            jitter: Duration::ZERO,
        };
        s.wait_for_delivery = Duration::from_secs(20);
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("takes the slot"), &[]).await;
    assert_eq!(status, 200);
    let send = send_in_background(&app, "delivered elsewhere");
    // A second gateway on the same database (its own store, as another
    // process has) claims the message once it is back, and delivers it.
    let other = tiktok_dm_store::SqliteStore::open(app.database().to_str().unwrap())
        .await
        .unwrap();
    let now = tiktok_dm_gateway::now_ms();
    let mut claimed = Vec::new();
    let scope = ClaimScope {
        gateway: "gw-other".into(),
        lease_ms: 60_000,
        pace: Pace::default(),
        horizon_ms: 0,
    };
    for _ in 0..250 {
        // It takes the account's lane (this gateway, alone on its SQLite
        // file, takes every lane back at its next tick).
        let beat = GatewayBeat {
            id: "gw-other".into(),
            started_at: now,
            expires_at: now + 400_000,
        };
        let lanes = other.heartbeat(beat, now).await.unwrap().lanes;
        let take = LeaseChange {
            gateway: "gw-other".into(),
            take: lanes.into_iter().map(|l| l.lane).collect(),
            force: true,
            lease_ms: 400_000,
            ..LeaseChange::default()
        };
        other.change_leases(take, now).await.unwrap();
        claimed = other
            .claim_due(now + 200_000, &scope, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.expect("the message reads back"))
            .collect();
        if !claimed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(claimed.len(), 1, "the paced message was left unclaimed");
    let text = claimed[0].content.text().map(|t| t.as_str());
    assert_eq!(text, Some("delivered elsewhere"));
    other
        .mark_sent(claimed[0].claim(), "7000000000000000042", "ws", now, None)
        .await
        .unwrap();
    // Well before its 20 s deadline, the handler reads the store of its own
    // accord and answers with the other gateway's delivery.
    let (status, answer) = tokio::time::timeout(Duration::from_secs(8), send)
        .await
        .expect("the waiting handler reads the store now and then")
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messages"][0]["state"], "sent");
    assert_eq!(
        answer["messages"][0]["server_message_id"],
        "7000000000000000042"
    );
    assert_eq!(
        app.sandbox.handle.messages().len(),
        1,
        "this gateway did not send it"
    );
}

/// The state of the outbox row of `client_message_id`, read by `conn`.
fn row_state(conn: &rusqlite::Connection, client_message_id: &str) -> String {
    conn.query_row(
        "SELECT state FROM outbox WHERE client_message_id = ?1",
        [client_message_id],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn a_delivery_is_answered_and_shown_while_another_process_holds_the_database() {
    let app = spawn_app().await;
    // Warm up the account's session, then hold the next acknowledgement back
    // long enough to take the database's write lock behind the acceptance.
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox.handle.delay_acks(Duration::from_millis(500), 1);
    let send = send_in_background(&app, "while the CLI writes");
    until_received(&app.sandbox, 2, 5).await;
    assert_eq!(app.sandbox.handle.messages().len(), 2);
    // What `tiktok-dm keys create` does while the gateway runs: a write
    // transaction of another connection, here held open.
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, answer) = tokio::time::timeout(Duration::from_secs(5), send)
        .await
        .expect("the answer does not wait for the outcome's commit")
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messages"][0]["state"], "sent");
    let cmid = answer["messages"][0]["client_message_id"].as_str().unwrap();
    assert_eq!(
        row_state(&conn, cmid),
        "sending",
        "the outcome is not in the store yet"
    );
    let id = answer["id"].as_str().unwrap();
    let shown = app
        .get_json(&format!("/v1/messages/{id}"), Some(&app.key))
        .await;
    assert_eq!(shown, answer, "a read in between shows the delivery");
    conn.execute_batch("COMMIT").unwrap();
    for _ in 0..250 {
        if row_state(&conn, cmid) == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        row_state(&conn, cmid),
        "sent",
        "recorded once the lock is free"
    );
    let shown = app
        .get_json(&format!("/v1/messages/{id}"), Some(&app.key))
        .await;
    assert_eq!(shown, answer);
}

#[tokio::test]
async fn a_stopping_gateway_finishes_the_deliveries_in_flight() {
    let mut app = spawn_app().await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox
        .handle
        .delay_acks(Duration::from_millis(400), 100);
    for i in 0..5 {
        let (status, answer) = app
            .post(
                &app.key,
                &app.body(&format!("in flight {i}")),
                &[("prefer", "respond-async")],
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    app.stop().await;
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let states: Vec<String> = conn
        .prepare("SELECT state FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        states,
        vec!["sent"; 6],
        "every delivery ended and was recorded"
    );
    assert_eq!(app.sandbox.handle.messages().len(), 6);
}

#[tokio::test]
async fn beyond_the_waiting_cap_a_send_answers_at_once_and_is_delivered_all_the_same() {
    let app = spawn_app_with(|s| {
        s.max_waiting_sends = 1;
        s.wait_for_delivery = Duration::from_secs(20);
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox.handle.delay_acks(Duration::from_secs(3), 2);
    let first = send_in_background(&app, "waits for its outcome");
    until_received(&app.sandbox, 2, 5).await;
    assert_eq!(app.sandbox.handle.messages().len(), 2, "the first is out");
    // One send waits already: the next is answered without waiting.
    let (status, answer) = tokio::time::timeout(
        Duration::from_secs(2),
        app.post(&app.key, &app.body("answered at once"), &[]),
    )
    .await
    .expect("a send beyond the cap does not wait for its outcome");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    let status_url = answer["status_url"].as_str().unwrap().to_owned();
    let (status, waited) = first.await.unwrap();
    assert_eq!(status, 200, "the send within the cap waited: {waited}");
    assert_eq!(waited["messages"][0]["state"], "sent");
    let mut shown = serde_json::Value::Null;
    for _ in 0..250 {
        shown = app.get_json(&status_url, Some(&app.key)).await;
        if shown["messages"][0]["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shown["messages"][0]["state"], "sent", "{shown}");
    assert_eq!(app.sandbox.handle.messages().len(), 3);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_sends_answered_early_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("tiktok_dm_sends_waiting 0\n"), "{metrics}");
}

#[tokio::test]
async fn a_stopping_gateway_answers_waiting_sends_at_once_and_still_records_their_delivery() {
    let mut app = spawn_app_with(|s| s.wait_for_delivery = Duration::from_secs(20)).await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox.handle.delay_acks(Duration::from_secs(3), 1);
    let send = send_in_background(&app, "waiting as the gateway stops");
    until_received(&app.sandbox, 2, 5).await;
    assert_eq!(app.sandbox.handle.messages().len(), 2, "it is out");
    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    // The caller gets the message's id now, not when TikTok answers (a
    // supervisor may not wait that long before it kills the process).
    let (status, answer) = tokio::time::timeout(Duration::from_secs(1), send)
        .await
        .expect("a waiting send is answered as the gateway stops")
        .unwrap();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["messages"][0]["state"], "sending", "{answer}");
    // The delivery in flight still ends, and is recorded, before `run` returns.
    let app = stopping.await.unwrap();
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let cmid = answer["messages"][0]["client_message_id"].as_str().unwrap();
    assert_eq!(row_state(&conn, cmid), "sent");
}

/// The bytes of each image the sandbox received, in arrival order.
fn received_images(app: &crate::TestApp) -> Vec<Vec<u8>> {
    app.sandbox
        .handle
        .messages()
        .iter()
        .filter_map(|m| m.image.as_ref())
        .map(|image| app.sandbox.handle.object(&image.path).unwrap())
        .collect()
}

/// Noise PNGs of `w` by `h` pixels, one per seed from 0 to `n - 1`.
fn noise_pngs(n: u32, w: u32, h: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|seed| tiktok_dm_test_support::noise_png(w, h, seed))
        .collect()
}

/// A send body with `png` as its only content, in base64.
fn image_body(app: &crate::TestApp, png: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let mut body = app.body("");
    body.as_object_mut().unwrap().remove("text");
    body["image"] =
        serde_json::json!({"base64": base64::engine::general_purpose::STANDARD.encode(png)});
    body
}

/// When the sandbox received each message, in order.
fn arrivals(app: &crate::TestApp) -> Vec<i64> {
    let mut at: Vec<i64> = app
        .sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.received_at_ms)
        .collect();
    at.sort_unstable();
    at
}

/// A gateway whose sends of one account go `min_interval` apart, no jitter.
async fn spawn_paced(min_interval: Duration) -> crate::TestApp {
    spawn_app_with(|s| {
        s.pacing = tiktok_dm_gateway::config::Pacing {
            min_interval,
            jitter: Duration::ZERO,
        };
    })
    .await
}

/// Sends `png` as an image with `Prefer: respond-async`.
async fn send_image(app: &crate::TestApp, png: &[u8]) {
    let (status, answer) = app
        .post(
            &app.key,
            &image_body(app, png),
            &[("prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test]
async fn paced_images_wait_without_their_bytes_and_go_out_intact() {
    let app = spawn_paced(Duration::from_millis(300)).await;
    let pngs = noise_pngs(3, 24, 16);
    for png in &pngs {
        send_image(&app, png).await;
    }
    until_received(&app.sandbox, 3, 5).await;
    // The second and third waited for their turn, and were read back.
    assert_eq!(received_images(&app), pngs);
}

#[tokio::test]
async fn an_image_beyond_the_memory_budget_waits_for_room_and_goes_out_intact() {
    // Room for 64 KiB of images at a time: one of these (about 40 KiB each).
    let app = spawn_app_with(|s| {
        s.image_limit = 64 * 1024;
        s.image_memory = 1;
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox.handle.delay_acks(Duration::from_millis(600), 1);
    let pngs = noise_pngs(2, 120, 110);
    assert!(
        pngs.iter()
            .all(|p| p.len() > 33 * 1024 && p.len() < 64 * 1024)
    );
    for png in &pngs {
        send_image(&app, png).await;
    }
    until_received(&app.sandbox, 3, 5).await;
    let received = app.sandbox.handle.messages();
    assert_eq!(received.len(), 3);
    // The second waited until the first (its answer held back) was done.
    let gap = received[2].received_at_ms - received[1].received_at_ms;
    assert!(gap >= 500, "the second went {gap} ms after the first");
    assert_eq!(received_images(&app), pngs);
}

#[tokio::test]
async fn a_send_beyond_the_request_memory_waits_for_room_with_its_body_unread() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // Room for the largest body twice: two of these bodies (about 80 KB each,
    // counted twice for the image decoded from them) do not fit together.
    let app = spawn_app_with(|s| {
        s.image_limit = 64 * 1024;
        s.request_memory = 1;
    })
    .await;
    let pngs = noise_pngs(2, 140, 140);
    let body_of = |png| serde_json::to_vec(&image_body(&app, png)).unwrap();
    let (slow_body, quick_body) = (body_of(&pngs[0]), body_of(&pngs[1]));
    assert!(slow_body.len() > 76_000 && quick_body.len() > 76_000);
    // A sender that stops halfway through its body.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\nX-TikTok-Session: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.key,
        crate::ALICE,
        slow_body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let half = slow_body.len() / 2;
    slow.write_all(&slow_body[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = {
        let request = app
            .http
            .post(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .header("x-tiktok-session", crate::ALICE)
            .header("content-type", "application/json")
            .body(quick_body);
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!quick.is_finished(), "the second body waits for room");
    assert!(app.sandbox.handle.messages().is_empty());
    let metrics = app.get_text("/metrics").await;
    let held: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tiktok_dm_request_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        held >= 2 * slow_body.len() as u64,
        "the stalled body's room shows: {held}"
    );
    // A text needs no room, and does not queue behind the waiting image.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(2),
        app.post(&app.key, &app.body("a text does not queue"), &[]),
    )
    .await
    .expect("a text send is not held up by image uploads");
    assert_eq!(status, 200);
    slow.write_all(&slow_body[half..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(quick.await.unwrap(), 200);
    assert_eq!(app.sandbox.handle.messages().len(), 3);
}

#[tokio::test]
async fn an_image_that_finds_no_room_for_half_a_lease_goes_back_rather_than_outlive_its_lease() {
    let app = spawn_app_with(|s| {
        s.image_limit = 64 * 1024;
        s.image_memory = 1;
        s.lease = Duration::from_secs(4);
        s.send_timeout = Duration::from_secs(10);
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    app.sandbox.handle.delay_acks(Duration::from_secs(3), 1);
    let pngs = noise_pngs(2, 120, 110);
    for png in &pngs {
        send_image(&app, png).await;
    }
    // The second has waited 2.5 s for the first's room: past half its lease
    // (2 s) it went back to the outbox instead of waiting on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let state: String = conn
        .query_row(
            "SELECT state FROM outbox ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "accepted", "given back, not held past its lease");
    until_received(&app.sandbox, 3, 8).await;
    assert_eq!(received_images(&app), pngs, "each went out once, intact");
    let attempts: i64 = conn
        .query_row(
            "SELECT attempts FROM outbox ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 1, "waiting for room counts no attempt");
}

#[tokio::test]
async fn a_delivery_slower_than_its_lease_keeps_it_and_is_not_claimed_twice() {
    let app = spawn_app_with(|s| {
        s.lease = Duration::from_millis(1500);
        s.send_timeout = Duration::from_secs(10);
    })
    .await;
    let (status, _) = app.post(&app.key, &app.body("warm-up"), &[]).await;
    assert_eq!(status, 200);
    // TikTok takes twice the lease to answer.
    app.sandbox.handle.delay_acks(Duration::from_secs(3), 1);
    let (status, answer) = app.post(&app.key, &app.body("slow to answer"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let cmid = answer["messages"][0]["client_message_id"].as_str().unwrap();
    let attempts: i64 = conn
        .query_row(
            "SELECT attempts FROM outbox WHERE client_message_id = ?1",
            [cmid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        attempts, 1,
        "no second claim while the first was on its way"
    );
    assert_eq!(app.sandbox.handle.messages().len(), 2);
}

/// A stored message that no longer reads back (here its conversation short
/// id was overwritten with 0 between two attempts) fails as the gateway's
/// own fault, 500 `internal_error`, and TikTok is not asked: it is not a
/// `request_rejected` from TikTok, which never saw it.
#[tokio::test]
async fn a_corrupt_stored_message_fails_as_the_gateways_own_error_not_tiktoks() {
    let app = spawn_app_behind_proxy(|s| {
        s.wait_for_delivery = Duration::from_millis(300);
        s.max_attempts = 30;
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.down();
    let (status, body) = app.post(&app.key, &app.body("kept bad"), &[]).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "UPDATE requests SET conversation_short_id = 0 WHERE id = ?1",
        [&id],
    )
    .unwrap();
    proxy.up();
    let mut answer = serde_json::Value::Null;
    for _ in 0..200 {
        answer = app
            .get_json(&format!("/v1/messages/{id}"), Some(&app.key))
            .await;
        if answer["messages"][0]["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer["messages"][0]["state"], "failed", "{answer}");
    assert_eq!(answer["error"]["code"], "internal_error", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot read back the message it stored"),
        "{message}"
    );
    assert!(
        !message.contains("short id"),
        "the detail stays in the log: {message}"
    );
    assert!(
        app.sandbox.handle.messages().is_empty(),
        "TikTok was not asked"
    );
}
