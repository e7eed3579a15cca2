//! POST /v1/messages end to end.

use base64::Engine as _;
use serde_json::json;
use tiktok_dm_store::Store;

use crate::{ALICE, spawn_app};

#[tokio::test]
async fn a_text_is_delivered_and_answered_in_the_original_nodes_shape() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(&app.key, &app.body("hello from the gateway"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["messages"][0]["kind"], "text");
    assert_eq!(body["messages"][0]["state"], "sent");
    assert_eq!(body["usage"]["messages"], 1);
    let received = app.sandbox.handle.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(
        body["messages"][0]["client_message_id"],
        received[0].client_message_id.as_str()
    );
    assert_eq!(
        body["messages"][0]["server_message_id"],
        received[0].server_message_id.to_string()
    );
    let everything = body.to_string();
    assert!(
        !everything.contains(ALICE) && !everything.contains(&app.key),
        "no secret in the answer"
    );
}

/// POST as `key` naming stored account `account`, without a session header.
async fn send_as(app: &crate::TestApp, key: &str, account: &str) -> (u16, serde_json::Value) {
    let mut body = app.body(&format!("as {account}"));
    body["account"] = json!(account);
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_stored_account_can_be_used_instead_of_a_session_header() {
    let app = spawn_app().await;
    app.store_alice_as("shop").await;
    let key = crate::key_with_accounts(&app.store, "shop's", None, &["shop"], false).await;
    let (status, answer) = send_as(&app, &key, "shop").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(app.sandbox.handle.messages().len(), 1);
}

/// A key sends only as the accounts it was given (one or several), or as any
/// if it was made so; "not yours" and "no such account" answer alike, so a
/// key cannot learn which names exist.
#[tokio::test]
async fn a_key_sends_only_as_its_own_accounts() {
    let app = spawn_app().await;
    for name in ["shopA", "shopB", "shopC"] {
        app.store_alice_as(name).await;
    }
    let a = crate::key_with_accounts(&app.store, "a", None, &["shopA"], false).await;
    let ab = crate::key_with_accounts(&app.store, "ab", None, &["shopA", "shopB"], false).await;
    let any = crate::key_with_accounts(&app.store, "any", None, &[], true).await;
    let refused = |(status, answer): (u16, serde_json::Value), account: &str| {
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "account_not_found", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap().to_owned();
        message.replace(account, "NAME")
    };
    let not_yours = refused(send_as(&app, &a, "shopB").await, "shopB");
    let unknown = refused(send_as(&app, &a, "nobody").await, "nobody");
    assert_eq!(not_yours, unknown, "the same answer for both");
    refused(send_as(&app, &app.key, "shopA").await, "shopA");
    assert_eq!(send_as(&app, &ab, "shopA").await.0, 200);
    assert_eq!(send_as(&app, &ab, "shopB").await.0, 200);
    refused(send_as(&app, &ab, "shopC").await, "shopC");
    assert_eq!(send_as(&app, &any, "shopC").await.0, 200);
    assert_eq!(app.sandbox.handle.messages().len(), 3);
}

/// A header that is there but not readable text is refused, not taken for
/// absent: the session would otherwise fall back to the stored account, and
/// the idempotency key would protect nothing.
#[tokio::test]
async fn unreadable_session_and_idempotency_headers_are_refused_not_ignored() {
    let app = spawn_app().await;
    app.store_alice_as("shop").await;
    let mut body = app.body("which account?");
    body["account"] = json!("shop");
    let session = format!("{ALICE}; note=caf\u{e9}");
    let (status, answer) = app
        .post(&app.key, &body, &[("x-tiktok-session", &session)])
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("session_invalid_format")),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains(ALICE),
        "the session is not echoed"
    );
    for key in ["commande-\u{e9}t\u{e9}-17".to_owned(), "k".repeat(256)] {
        let (status, answer) = app
            .post(&app.key, &app.body("once"), &[("idempotency-key", &key)])
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("idempotency_key_invalid")),
            "{answer}"
        );
    }
    assert!(app.sandbox.handle.messages().is_empty(), "nothing was sent");
    let longest = "k".repeat(255);
    for _ in 0..2 {
        let extra = [("idempotency-key", longest.as_str())];
        assert_eq!(app.post(&app.key, &app.body("once"), &extra).await.0, 200);
    }
    assert_eq!(app.sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_told_what_is_expected() {
    let app = spawn_app().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .header("x-tiktok-session", ALICE)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // What curl -d sends by default, and what n8n's form option sends.
    let form = post(
        b"conversation_id=1&text=hi".to_vec(),
        "application/x-www-form-urlencoded",
    )
    .await
    .unwrap();
    assert_eq!(form.status(), 400);
    let answer: serde_json::Value = form.json().await.unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("must be a JSON object") && message.contains("x-www-form-urlencoded"),
        "{message}"
    );
    let array = post(b"[]".to_vec(), "application/json").await.unwrap();
    let answer: serde_json::Value = array.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_json");
    assert!(
        !answer.to_string().contains("JsonBody"),
        "no internal names: {answer}"
    );
    // A UTF-8 byte order mark (some Windows tools write one) is skipped.
    let mut with_bom = b"\xef\xbb\xbf".to_vec();
    with_bom.extend(app.body("after a BOM").to_string().into_bytes());
    let bom = post(with_bom, "application/json").await.unwrap();
    assert_eq!(bom.status(), 200);
    assert_eq!(
        app.sandbox.handle.messages()[0].content["text"],
        "after a BOM"
    );
}

#[tokio::test]
async fn keys_are_checked_before_anything_else() {
    let app = spawn_app().await;
    let body = app.body("x");
    let none = app
        .http
        .post(app.url("/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "api_key_missing"
    );
    let (status, wrong) = app.post("tdm_not-a-real-key", &body, &[]).await;
    assert_eq!(
        (status, wrong["error"]["code"].as_str()),
        (401, Some("api_key_invalid"))
    );
    app.store.revoke_api_key("default", 1).await.unwrap();
    let (status, revoked) = app.post(&app.key, &body, &[]).await;
    assert_eq!(
        (status, revoked["error"]["code"].as_str()),
        (401, Some("api_key_revoked"))
    );
    assert!(app.sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn a_key_revoked_by_another_process_is_refused_at_its_next_send() {
    let app = spawn_app().await;
    let (status, _) = app.post(&app.key, &app.body("before"), &[]).await;
    assert_eq!(status, 200);
    // `tiktok-dm keys revoke default` while serve runs: its own store.
    let cli = tiktok_dm_store::SqliteStore::open(app.database().to_str().unwrap())
        .await
        .unwrap();
    assert!(cli.revoke_api_key("default", 1).await.unwrap());
    for body in [app.body("after"), app.body("and again")] {
        let (status, answer) = app.post(&app.key, &body, &[]).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("api_key_revoked")),
            "{answer}"
        );
    }
    let usage = app.get_json("/v1/usage", Some(&app.key)).await;
    assert_eq!(usage["error"]["code"], "api_key_revoked");
    assert_eq!(app.sandbox.handle.messages().len(), 1);
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "nothing was accepted after the revocation");
}

#[tokio::test]
async fn invalid_requests_get_one_code_per_cause() {
    let app = spawn_app().await;
    let c = app.sandbox.handle.seed().conversations[0].clone();
    let cases = [
        (
            json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string()}),
            "message_empty",
        ),
        (
            json!({"conversation_short_id": "1", "text": "x"}),
            "conversation_id_missing",
        ),
        (json!({"text": "x"}), "conversation_id_missing"),
        (json!({"to_uid": "12ab", "text": "x"}), "to_uid_invalid"),
        (json!({"to_uid": 0, "text": "x"}), "to_uid_invalid"),
        (json!({"to_uid": [1], "text": "x"}), "to_uid_invalid"),
        (
            json!({"to_uid": "1", "conversation_id": c.conversation_id, "text": "x"}),
            "to_uid_invalid",
        ),
        (
            json!({"to_uid": "1", "conversation_short_id": "1", "text": "x"}),
            "to_uid_invalid",
        ),
        (
            json!({"conversation_id": c.conversation_id, "conversation_short_id": "12ab", "text": "x"}),
            "conversation_short_id_invalid",
        ),
        (
            json!({"conversation_id": "nope", "conversation_short_id": "1", "text": "x"}),
            "conversation_id_invalid",
        ),
        (
            json!({"conversation_id": c.conversation_id, "conversation_short_id": "1", "image": {"base64": "aGVsbG8="}}),
            "image_invalid",
        ),
        (
            json!({"conversation_id": c.conversation_id, "conversation_short_id": "1", "text": "x", "extra": 1}),
            "invalid_json",
        ),
        (
            json!({"conversation_id": c.conversation_id, "conversation_short_id": "1", "text": "a\u{0}b"}),
            "text_invalid",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = app.post(&app.key, &body, &[]).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
        assert_eq!(answer["success"], false);
    }
    let no_session = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .json(&app.body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_session.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "session_missing"
    );
    assert!(app.sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn the_quota_is_enforced_with_retry_after_and_reported() {
    let app = spawn_app().await;
    let key = app.key_with_limit("limited", Some(2)).await;
    for i in 0..2 {
        let (status, body) = app.post(&key, &app.body(&format!("m{i}")), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["quota"]["daily"]["remaining"], 1 - i);
        assert_eq!(body["quota"]["daily"]["used"], i + 1);
        assert_eq!(body["usage"]["messages"], 1);
        assert_eq!(body["usage"]["totals"]["messages_today"], i + 1);
        assert_eq!(body["usage"]["totals"]["messages"], i + 1);
    }
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&key)
        .header("x-tiktok-session", ALICE)
        .json(&app.body("third"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-limit"], "2");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let refused: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "quota_exceeded");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("it resets at 20") && message.ends_with("T00:00:00Z"),
        "the reset is a UTC midnight in RFC 3339: {message}"
    );
    assert_eq!(app.sandbox.handle.messages().len(), 2);
    // The refused send counted nothing.
    let usage = app
        .http
        .get(app.url("/v1/usage"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(usage.headers()["x-ratelimit-remaining"], "0");
    let usage: serde_json::Value = usage.json().await.unwrap();
    assert_eq!(usage["usage"]["key"], "limited");
    assert_eq!(usage["usage"]["totals"]["messages_this_month"], 2);
    assert_eq!(usage["quota"]["daily"]["used"], 2);
    assert_eq!(usage["quota"]["daily"]["limit"], 2);
}

/// "On every answer": a refused request and a missing one carry the
/// key's X-RateLimit headers too.
#[tokio::test]
async fn failed_answers_to_a_limited_key_carry_its_rate_limit_headers() {
    let app = spawn_app().await;
    let key = app.key_with_limit("limited", Some(5)).await;
    assert_eq!(app.post(&key, &app.body("one"), &[]).await.0, 200);
    let empty = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&key)
        .json(&json!({"conversation_id": "0:1:1:2", "conversation_short_id": "1"}))
        .send()
        .await
        .unwrap();
    let missing = app
        .http
        .get(app.url("/v1/messages/req_000000000000"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    for (answer, status) in [(empty, 400), (missing, 404)] {
        assert_eq!(answer.status(), status);
        let headers = answer.headers();
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["x-ratelimit-remaining"], "4");
        assert!(headers.contains_key("x-ratelimit-reset"));
    }
    // A key without a quota has no window to report.
    let unlimited = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unlimited.status(), 400);
    assert!(!unlimited.headers().contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_result_and_sends_once() {
    let app = spawn_app().await;
    let body = app.body("exactly once");
    let (_, first) = app
        .post(&app.key, &body, &[("idempotency-key", "order-17")])
        .await;
    let (status, again) = app
        .post(&app.key, &body, &[("idempotency-key", "order-17")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.sandbox.handle.messages().len(), 1);
    let (status, conflict) = app
        .post(
            &app.key,
            &app.body("something else"),
            &[("idempotency-key", "order-17")],
        )
        .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
}

#[tokio::test]
async fn tiktoks_business_rejection_comes_back_with_its_code_and_tip() {
    let app = spawn_app().await;
    let c = app.sandbox.handle.seed().conversations[1].clone();
    let body = json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string(), "text": "first"});
    assert_eq!(app.post(&app.key, &body, &[]).await.0, 200);
    let (status, answer) = app.post(&app.key, &json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string(), "text": "second"}), &[]).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "business_rejected");
    assert_eq!(answer["error"]["tiktok_code"], 7193);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("accepts your message request")
    );
}

#[tokio::test]
async fn a_short_id_of_another_conversation_is_refused_as_tiktok_refuses_it() {
    let app = spawn_app().await;
    let seed = app.sandbox.handle.seed();
    let (mine, other) = (&seed.conversations[0], &seed.conversations[1]);
    let body = json!({"conversation_id": mine.conversation_id, "conversation_short_id": other.conversation_short_id.to_string(), "text": "hello"});
    let (status, answer) = app.post(&app.key, &body, &[]).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "request_rejected");
    assert_eq!(answer["error"]["tiktok_code"], 4);
    assert_eq!(answer["messages"][0]["state"], "failed");
    // A refused message gives its reservation back.
    assert_eq!(answer["usage"]["totals"]["messages_today"], 0);
    assert!(app.sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn an_image_and_a_caption_arrive_in_order_with_the_same_bytes() {
    let app = spawn_app().await;
    let png = tiktok_dm_test_support::noise_png(20, 10, 3);
    let mut body = app.body("caption");
    body["image"] = json!({"base64": base64::engine::general_purpose::STANDARD.encode(&png)});
    let (status, answer) = app.post(&app.key, &body, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messages"][0]["kind"], "image");
    assert_eq!(answer["messages"][1]["kind"], "text");
    assert_eq!(answer["usage"]["image_bytes"], png.len());
    assert_eq!(answer["usage"]["totals"]["image_bytes"], png.len());
    assert_eq!(answer["usage"]["messages"], 2);
    let received = app.sandbox.handle.messages();
    assert_eq!(
        received.iter().map(|m| m.message_type).collect::<Vec<_>>(),
        [1802, 7]
    );
    let path = &received[0].image.as_ref().unwrap().path;
    assert_eq!(app.sandbox.handle.object(path).unwrap(), png);
}

#[tokio::test]
async fn two_hundred_concurrent_sends_against_a_limit_of_fifty_accept_exactly_fifty() {
    let app = std::sync::Arc::new(spawn_app().await);
    let key = app.key_with_limit("burst", Some(50)).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (app, key) = (app.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            app.post(
                &key,
                &app.body(&format!("burst {i}")),
                &[("prefer", "respond-async")],
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 150);
    assert_eq!(
        statuses.iter().filter(|s| **s == 200 || **s == 202).count(),
        50
    );
    // Every accepted message is delivered, once.
    crate::until_received(&app.sandbox, 50, 10).await;
    assert_eq!(app.sandbox.handle.messages().len(), 50);
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let app = spawn_app().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready = app.get_json("/readyz", None).await;
    assert_eq!(ready, json!({"ready": true, "outbox_depth": 0}));
}

/// A send's answer is built from the acceptance and the worker's news, not read
/// back from the store; it must be exactly what the store reports for the same
/// request afterwards.
#[tokio::test]
async fn a_sends_answer_is_what_the_store_reports_for_it() {
    let app = spawn_app().await;
    let key = app.key_with_limit("counted", Some(10)).await;
    let png = tiktok_dm_test_support::noise_png(8, 8, 1);
    let mut with_image = app.body("caption");
    with_image["image"] = json!({"base64": base64::engine::general_purpose::STANDARD.encode(&png)});
    for body in [app.body("first"), with_image, app.body("third")] {
        let (status, answer) = app.post(&key, &body, &[]).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["id"].as_str().unwrap();
        let stored = app
            .get_json(&format!("/v1/messages/{id}"), Some(&key))
            .await;
        assert_eq!(answer, stored);
    }
    // Accepted at once: the answer says so, and counts the send already.
    let (status, answer) = app
        .post(&key, &app.body("later"), &[("prefer", "respond-async")])
        .await;
    assert!(status == 202 || status == 200, "{status} {answer}");
    assert_eq!(answer["usage"]["totals"]["messages_today"], 5);
    assert_eq!(answer["quota"]["daily"]["remaining"], 5);
    if status == 202 {
        assert!(
            ["accepted", "sending"].contains(&answer["messages"][0]["state"].as_str().unwrap()),
            "{answer}"
        );
    }
}
