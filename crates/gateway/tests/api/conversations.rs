//! Reading DMs with the API key: `/v1/conversations`, a conversation's
//! messages, and a logged image through `/v1/media/{cursor}`.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tiktok_dm_gateway::api::Route;
use tiktok_dm_store::{Appended, NewEvent, Store};
use tiktok_dm_test_support::noise_png;

use crate::inbound::{alice_bob, inbound, store_session_as, until_listening};
use crate::ops::{conforms, schema_for};
use crate::{ALICE, TestApp, key_with_accounts, spawn_app};

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let answer = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A gateway with alice stored as `shop`, and a key that may use it.
async fn shop() -> (TestApp, String) {
    let app = spawn_app().await;
    store_session_as(&app, "shop", ALICE).await;
    let key = key_with_accounts(&app.store, "shop-key", None, &["shop"], false).await;
    (app, key)
}

#[tokio::test]
async fn the_account_s_conversations_are_listed_with_their_short_ids() {
    let (app, key) = shop().await;
    let (status, body) = get(&app, &key, "/v1/conversations?account=shop").await;
    assert_eq!(status, 200, "{body}");
    let doc = app.get_json("/openapi.json", None).await;
    conforms(
        &body,
        schema_for(&doc, Route::ListConversations, 200),
        &doc,
        "conversations",
    );
    let listed = body["conversations"].as_array().unwrap();
    for seeded in &app.sandbox.handle.seed().conversations {
        let found = listed
            .iter()
            .find(|c| c["conversation_id"] == seeded.conversation_id.as_str())
            .unwrap_or_else(|| panic!("{} is not listed: {body}", seeded.conversation_id));
        assert_eq!(
            found["conversation_short_id"],
            seeded.conversation_short_id.to_string()
        );
    }
}

#[tokio::test]
async fn a_conversation_s_messages_come_newest_first_in_pages() {
    let (app, key) = shop().await;
    let conversation = alice_bob(&app);
    for text in ["one", "two", "three"] {
        inbound(
            &app,
            json!({"from": "bob", "conversation_id": conversation, "text": text}),
        )
        .await;
    }
    let path = format!("/v1/conversations/{conversation}/messages?account=shop&limit=2");
    let (status, first) = get(&app, &key, &path).await;
    assert_eq!(status, 200, "{first}");
    let doc = app.get_json("/openapi.json", None).await;
    conforms(
        &first,
        schema_for(&doc, Route::ListConversationMessages, 200),
        &doc,
        "messages",
    );
    let texts = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(texts(&first), ["three", "two"]);
    assert_eq!(first["messages"][0]["type"], "message.received");
    assert_eq!(first["messages"][0]["direction"], "inbound");
    let next = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = get(&app, &key, &format!("{path}&before={next}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(texts(&second), ["one"]);
    assert_eq!(second["next_cursor"], Value::Null);
}

/// Waits for the first logged `message.received` event of kind `kind`.
async fn logged(app: &TestApp, key: &str, kind: &str) -> Value {
    for _ in 0..100 {
        let (_, body) = get(app, key, "/v1/events?types=message.received").await;
        let found = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["data"]["kind"] == kind)
            .cloned();
        if let Some(event) = found {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} message was logged");
}

#[tokio::test]
async fn a_logged_image_is_served_decrypted_with_its_type() {
    let (app, key) = shop().await;
    until_listening(&app, "alice", 1).await;
    let png = noise_png(24, 16, 9);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": alice_bob(&app), "image": b64, "text": "this one"}),
    )
    .await;
    let image = logged(&app, &key, "image").await;
    assert!(image["data"]["image"].get("decrypt_key").is_none());
    let cursor = image["cursor"].as_str().unwrap();
    let answer = app
        .http
        .get(app.url(&format!("/v1/media/{cursor}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "image/png");
    assert_eq!(answer.bytes().await.unwrap().as_ref(), png.as_slice());

    // A text message has no image.
    let text = logged(&app, &key, "text").await;
    let (status, body) = get(
        &app,
        &key,
        &format!("/v1/media/{}", text["cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    for nothing in ["999999", "0", "x"] {
        let (status, _) = get(&app, &key, &format!("/v1/media/{nothing}")).await;
        assert_eq!(status, 404, "{nothing}");
    }

    // The history shows the image too, without its key.
    let path = format!(
        "/v1/conversations/{}/messages?account=shop",
        alice_bob(&app)
    );
    let (_, page) = get(&app, &key, &path).await;
    let shown = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "image")
        .expect("the image in the history");
    assert!(shown["image"]["path"].is_string(), "{shown}");
    assert!(shown["image"].get("decrypt_key").is_none(), "{shown}");
}

/// Logs a copy of `event` (as stored) with its image changed by `change`.
async fn log_altered(app: &TestApp, cursor: &str, change: impl FnOnce(&mut Value)) -> i64 {
    let at: i64 = cursor.parse().unwrap();
    let stored = app
        .store
        .events_after(at - 1, &Default::default(), 1)
        .await
        .unwrap()
        .remove(0);
    let mut payload: Value = serde_json::from_str(&stored.payload).unwrap();
    change(&mut payload["image"]);
    let new = NewEvent {
        account: stored.account,
        event_type: stored.event_type,
        conversation_id: stored.conversation_id,
        dedupe_key: Some(format!("altered:{}", rand_suffix())),
        payload: payload.to_string(),
        occurred_at: stored.occurred_at,
    };
    match app.store.append_events(vec![new], 0).await.unwrap()[0] {
        Appended::New { cursor } => cursor,
        ref other => panic!("{other:?}"),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn an_image_that_does_not_open_or_cannot_be_fetched_is_a_specific_502() {
    let (app, key) = shop().await;
    until_listening(&app, "alice", 1).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(noise_png(8, 8, 1));
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": alice_bob(&app), "image": b64}),
    )
    .await;
    let image = logged(&app, &key, "image").await;
    let cursor = image["cursor"].as_str().unwrap();

    let wrong_key = log_altered(&app, cursor, |i| i["decrypt_key"] = json!("11".repeat(32))).await;
    let (status, body) = get(&app, &key, &format!("/v1/media/{wrong_key}")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "media_invalid");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not open"), "{message}");
    assert!(!message.contains("1111"), "{message}");

    let unreachable = log_altered(&app, cursor, |i| {
        i["urls"] = json!(["http://127.0.0.1:1/im/media/gone"]);
    })
    .await;
    let (status, body) = get(&app, &key, &format!("/v1/media/{unreachable}")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn a_key_reads_only_its_accounts_and_bad_queries_are_refused() {
    let (app, key) = shop().await;
    store_session_as(&app, "bobs", "sandbox-session-bob").await;
    let other = key_with_accounts(&app.store, "other", None, &["bobs"], false).await;
    let conversation = alice_bob(&app);
    for path in [
        "/v1/conversations?account=shop".to_owned(),
        format!("/v1/conversations/{conversation}/messages?account=shop"),
        "/v1/conversations?account=nobody".to_owned(),
    ] {
        let (status, body) = get(&app, &other, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "account_not_found", "{path}");
    }
    until_listening(&app, "alice", 1).await;
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": conversation, "image": base64::engine::general_purpose::STANDARD.encode(noise_png(4, 4, 2))}),
    )
    .await;
    let image = logged(&app, &key, "image").await;
    let (status, _) = get(
        &app,
        &other,
        &format!("/v1/media/{}", image["cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "another key's account's image is not found");

    let messages = format!("/v1/conversations/{conversation}/messages");
    for (path, says) in [
        ("/v1/conversations".to_owned(), "account is required"),
        (format!("{messages}?limit=5"), "account is required"),
        (
            format!("{messages}?account=shop&limit=0"),
            "limit must be a whole number from 1 to 100",
        ),
        (
            format!("{messages}?account=shop&limit=101"),
            "limit must be a whole number from 1 to 100",
        ),
        (format!("{messages}?account=shop&limit=x"), "limit must be"),
        (
            format!("{messages}?account=shop&before=-3"),
            "before must be a positive whole number",
        ),
        (
            "/v1/conversations?account=shop&page=2".to_owned(),
            "unknown query parameter \"page\"",
        ),
    ] {
        let (status, body) = get(&app, &key, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    }
    let (status, body) = get(&app, &key, "/v1/conversations/nope/messages?account=shop").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("conversation_id_invalid"))
    );
    let (status, _) = get(&app, "not-a-key", "/v1/conversations?account=shop").await;
    assert_eq!(status, 401);
}
