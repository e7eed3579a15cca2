//! Sends that do not give both ids: a conversation id without
//! `conversation_short_id` (found from the inbox), or `to_uid` instead of
//! both (the 1:1 conversation with that user).

use serde_json::{Value, json};

use crate::inbound::store_session_as;
use crate::{TestApp, key_with_accounts, spawn_app};

/// How many rows the outbox holds: nothing is kept for a refused send.
fn outbox_rows(app: &TestApp) -> i64 {
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap()
}

fn uid_of(app: &TestApp, name: &str) -> String {
    app.sandbox.handle.account(name).unwrap().uid.to_string()
}

#[tokio::test]
async fn a_send_without_a_short_id_goes_to_the_conversation_the_inbox_names() {
    let app = spawn_app().await;
    let seed = app.sandbox.handle.seed().clone();
    // alice's direct conversation with bob, and her message request to carol.
    for (i, c) in seed.conversations.iter().enumerate() {
        let text = format!("no short id {i}");
        let body = json!({"conversation_id": c.conversation_id, "text": text});
        let (status, answer) = app.post(&app.key, &body, &[]).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["messages"][0]["state"], "sent", "{answer}");
        let received = app.sandbox.handle.messages();
        let got = received.iter().find(|m| m.content["text"] == text.as_str());
        let got = got.unwrap_or_else(|| panic!("{text:?} did not arrive"));
        assert_eq!(got.conversation_id, c.conversation_id.as_str());
        assert_eq!(got.conversation_short_id, c.conversation_short_id.get());
        // Into a message request with its inbox (3), as TikTok web sends.
        assert_eq!(got.inbox_type, c.inbox_type, "{}", c.conversation_id);
    }
    assert!(seed.conversations.iter().any(|c| c.inbox_type == 3));
}

#[tokio::test]
async fn a_send_to_a_uid_goes_to_the_one_to_one_conversation_with_that_user() {
    let app = spawn_app().await;
    let bob = uid_of(&app, "bob");
    let seeded = app.sandbox.handle.seed().conversations[0].clone();
    // As a string, and as a number.
    let numeric: Value = serde_json::from_str(&bob).unwrap();
    for (to_uid, text) in [(json!(bob), "to bob"), (numeric, "to bob again")] {
        let body = json!({"to_uid": to_uid, "text": text});
        let (status, answer) = app.post(&app.key, &body, &[]).await;
        assert_eq!(status, 200, "{answer}");
        let received = app.sandbox.handle.messages();
        let got = received.iter().find(|m| m.content["text"] == text);
        let got = got.unwrap_or_else(|| panic!("{text:?} did not arrive"));
        assert_eq!(got.conversation_id, seeded.conversation_id.as_str());
        assert_eq!(
            got.conversation_short_id,
            seeded.conversation_short_id.get()
        );
    }
}

#[tokio::test]
async fn a_stored_account_sends_to_a_uid_with_its_own_inbox() {
    let app = spawn_app().await;
    store_session_as(&app, "bob-shop", "sandbox-session-bob").await;
    let key = key_with_accounts(&app.store, "bob-key", None, &["bob-shop"], false).await;
    let alice = uid_of(&app, "alice");
    let answer = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&key)
        .json(&json!({"to_uid": alice, "text": "from the shop", "account": "bob-shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let received = app.sandbox.handle.messages();
    let got = received
        .iter()
        .find(|m| m.content["text"] == "from the shop")
        .unwrap();
    assert_eq!(got.sender_uid.to_string(), uid_of(&app, "bob"));
}

#[tokio::test]
async fn a_conversation_the_inbox_does_not_have_is_not_found_and_nothing_is_kept() {
    let app = spawn_app().await;
    let bob = uid_of(&app, "bob");
    let carol = uid_of(&app, "carol");
    // bob and carol have no conversation; alice is in neither of these.
    // Same-length decimal uids sort as their numbers do.
    let (low, high) = if bob < carol {
        (&bob, &carol)
    } else {
        (&carol, &bob)
    };
    let strangers = format!("0:1:{low}:{high}");
    let bob_session = [("x-tiktok-session", "sandbox-session-bob")];
    let cases = [
        (json!({"to_uid": carol, "text": "x"}), &bob_session[..]),
        (json!({"conversation_id": strangers, "text": "x"}), &[][..]),
    ];
    for (body, extra) in cases {
        for _ in 0..2 {
            let (status, answer) = app.post(&app.key, &body, extra).await;
            assert_eq!(status, 422, "{answer}");
            assert_eq!(
                answer["error"]["code"], "conversation_not_found",
                "{answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("inbox"), "{message}");
            assert!(!message.contains("sandbox-session"), "{message}");
        }
    }
    assert_eq!(outbox_rows(&app), 0);
    assert!(app.sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn a_send_to_the_account_s_own_uid_is_refused() {
    let app = spawn_app().await;
    let alice = uid_of(&app, "alice");
    let (status, answer) = app
        .post(&app.key, &json!({"to_uid": alice, "text": "me"}), &[])
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "to_uid_invalid");
    assert_eq!(outbox_rows(&app), 0);
}

#[tokio::test]
async fn a_refused_session_is_answered_before_anything_is_accepted() {
    let app = spawn_app().await;
    let c = app.sandbox.handle.seed().conversations[0].clone();
    let body = json!({"conversation_id": c.conversation_id, "text": "x"});
    let extra = [("x-tiktok-session", "sessionid=not-a-sandbox-session")];
    let (status, answer) = app.post(&app.key, &body, &extra).await;
    assert_eq!(answer["error"]["code"], "session_rejected", "{answer}");
    assert_eq!(status, 422, "{answer}");
    assert!(!answer.to_string().contains("not-a-sandbox-session"));
    assert_eq!(outbox_rows(&app), 0);
}

#[tokio::test]
async fn form_fields_carry_to_uid_too() {
    let app = spawn_app().await;
    let bob = uid_of(&app, "bob");
    let form = reqwest::multipart::Form::new()
        .text("to_uid", bob)
        .text("text", "form to bob");
    let answer = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", crate::ALICE)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let received = app.sandbox.handle.messages();
    assert!(received.iter().any(|m| m.content["text"] == "form to bob"));
}

#[tokio::test]
async fn an_idempotency_key_is_checked_before_the_inbox_is_asked() {
    let app = spawn_app().await;
    let bob = uid_of(&app, "bob");
    let key = [("idempotency-key", "order-17")];
    let body = json!({"to_uid": bob, "text": "your order shipped"});
    let (status, first) = app.post(&app.key, &body, &key).await;
    assert_eq!(status, 200, "{first}");
    // The same request again: its replay, not a second message.
    let (status, again) = app.post(&app.key, &body, &key).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.sandbox.handle.messages().len(), 1);
    // Another request under the key is a conflict, known without asking the
    // inbox (which has no conversation with this user: that answer would be
    // conversation_not_found).
    let other = json!({"to_uid": "7000000000000000099", "text": "your order shipped"});
    let (status, conflict) = app.post(&app.key, &other, &key).await;
    assert_eq!(
        conflict["error"]["code"], "idempotency_conflict",
        "{conflict}"
    );
    assert_eq!(status, 409);
}
