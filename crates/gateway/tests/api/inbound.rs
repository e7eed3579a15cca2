//! Listening accounts: what they hear is logged and served by `/v1/events`.

use std::time::Duration;

use serde_json::{Value, json};
use tiktok_dm_gateway::secrets::{SealContext, Vault};
use tiktok_dm_store::{AccountStatus, Store};

use crate::{TestApp, key_with_accounts, spawn_app, spawn_app_with};

const BOB: &str = "sandbox-session-bob";

/// Stores `session` as account `name`, sealed as the gateway seals it.
pub(crate) async fn store_session_as(app: &TestApp, name: &str, session: &str) {
    let sealed = Vault::from_key(&app.vault_key)
        .seal(session.as_bytes(), SealContext::Account(name))
        .unwrap();
    app.store.put_account(name, &sealed, 0).await.unwrap();
}

/// Waits until the sandbox sees `n` sockets of the seeded account `who`.
pub(crate) async fn until_listening(app: &TestApp, who: &str, n: usize) {
    let uid = app.sandbox.handle.account(who).unwrap().uid;
    for _ in 0..500 {
        if app.sandbox.handle.open_sockets(uid) >= n {
            // The listener's first catch-up runs right after the connect.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{who} is not listening");
}

pub(crate) async fn inbound(app: &TestApp, body: Value) {
    let answer = app
        .http
        .post(format!("{}/_sandbox/inbound", app.sandbox.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

pub(crate) fn alice_bob(app: &TestApp) -> String {
    app.sandbox.handle.seed().conversations[0]
        .conversation_id
        .as_str()
        .to_owned()
}

async fn events(app: &TestApp, key: &str, query: &str) -> (u16, Value) {
    let answer = app
        .http
        .get(app.url(&format!("/v1/events{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn a_message_to_a_stored_account_is_logged_and_answers_a_waiting_long_poll() {
    let app = spawn_app().await;
    store_session_as(&app, "shop", crate::ALICE).await;
    let key = key_with_accounts(&app.store, "shop-key", None, &["shop"], false).await;
    until_listening(&app, "alice", 1).await;

    let poll = {
        let (http, url, key) = (app.http.clone(), app.url("/v1/events?wait=20"), key.clone());
        tokio::spawn(async move {
            let answer = http.get(url).bearer_auth(key).send().await.unwrap();
            answer.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    inbound(&app, json!({"from": "bob", "conversation_id": alice_bob(&app), "text": "is the blue one in stock?"})).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap();
    let got = answer["events"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{answer}");
    let event = &got[0];
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["account"], "shop");
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &event["data"];
    assert_eq!(data["text"], "is the blue one in stock?");
    assert_eq!(data["direction"], "inbound");
    assert_eq!(data["kind"], "text");
    assert_eq!(data["account"], "shop");
    let bob = app.sandbox.handle.account("bob").unwrap().uid.to_string();
    assert_eq!(data["sender_uid"], bob.as_str());
    assert_eq!(answer["next_cursor"], event["cursor"]);
    let doc = tiktok_dm_gateway::api::openapi::document();
    crate::ops::conforms(
        &answer,
        crate::ops::schema_for(&doc, tiktok_dm_gateway::api::Route::ListEvents, 200),
        &doc,
        "GET /v1/events",
    );

    // Nothing newer: an immediate answer without events, same cursor.
    let after = event["cursor"].as_str().unwrap();
    let (status, again) = events(&app, &key, &format!("?after={after}")).await;
    assert_eq!(status, 200);
    assert_eq!(again["events"], json!([]));
    assert_eq!(again["next_cursor"], after);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_accounts_listening 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tiktok_dm_events_logged_total{type=\"message.received\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_key_sees_only_the_events_of_its_accounts() {
    let app = spawn_app().await;
    store_session_as(&app, "shop", crate::ALICE).await;
    store_session_as(&app, "bobs", BOB).await;
    let shop_key = key_with_accounts(&app.store, "k1", None, &["shop"], false).await;
    let bobs_key = key_with_accounts(&app.store, "k2", None, &["bobs"], false).await;
    until_listening(&app, "alice", 1).await;
    until_listening(&app, "bob", 1).await;
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": alice_bob(&app), "text": "from bob"}),
    )
    .await;
    // alice hears it inbound, bob's own account hears its echo outbound.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, shop) = events(&app, &shop_key, "?types=message.received").await;
    let (_, bobs) = events(&app, &bobs_key, "?types=message.received").await;
    let directions = |v: &Value| -> Vec<(String, String)> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["account"].as_str().unwrap().to_owned(),
                    e["data"]["direction"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        directions(&shop),
        [("shop".to_owned(), "inbound".to_owned())]
    );
    assert_eq!(
        directions(&bobs),
        [("bobs".to_owned(), "outbound".to_owned())]
    );
    let (status, refused) = events(&app, &shop_key, "?account=bobs").await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["code"], "account_not_found");
}

#[tokio::test]
async fn pushes_lost_on_the_way_are_caught_up_and_logged_once() {
    let app = spawn_app_with(|s| s.listen_poll = Some(Duration::from_millis(400))).await;
    store_session_as(&app, "shop", crate::ALICE).await;
    let key = key_with_accounts(&app.store, "k", None, &["shop"], false).await;
    until_listening(&app, "alice", 1).await;
    app.sandbox.handle.drop_pushes("alice", 2);
    for text in ["lost 1", "lost 2", "pushed"] {
        inbound(
            &app,
            json!({"from": "bob", "conversation_id": alice_bob(&app), "text": text}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, all) = events(&app, &key, "?types=message.received").await;
    let mut texts: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    texts.sort_unstable();
    assert_eq!(texts, ["lost 1", "lost 2", "pushed"]);
}

#[tokio::test]
async fn a_session_tiktok_refuses_marks_the_account_expired_until_a_new_one_is_stored() {
    let app = spawn_app().await;
    app.sandbox.handle.invalid_session(1);
    store_session_as(&app, "shop", crate::ALICE).await;
    let mut expired = false;
    for _ in 0..200 {
        let accounts = app.store.list_accounts().await.unwrap();
        if accounts
            .iter()
            .any(|a| a.name == "shop" && a.status == AccountStatus::Expired)
        {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(expired, "the refused account is marked expired");
    tokio::time::sleep(tiktok_dm_gateway::inbound::RESCAN + Duration::from_millis(500)).await;
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_accounts_expired 1"),
        "{metrics}"
    );
    let uid = app.sandbox.handle.account("alice").unwrap().uid;
    assert_eq!(
        app.sandbox.handle.open_sockets(uid),
        0,
        "an expired account is not listened to"
    );

    // A fresh session (here the same one, now accepted) makes it active and
    // listened to again.
    store_session_as(&app, "shop", crate::ALICE).await;
    until_listening(&app, "alice", 1).await;
    let accounts = app.store.list_accounts().await.unwrap();
    assert_eq!(accounts[0].status, AccountStatus::Active);
}

#[tokio::test]
async fn bad_event_queries_are_refused_specifically() {
    let app = spawn_app().await;
    for (query, says) in [
        ("?wait=61", "wait must be a whole number from 0 to 60"),
        ("?after=-1", "after must be a whole number"),
        ("?limit=x", "limit must be a whole number from 0 to 500"),
        (
            "?types=message.received,nope",
            "unknown event type \"nope\"",
        ),
        ("?cursor=1", "unknown query parameter \"cursor\""),
    ] {
        let (status, body) = events(&app, &app.key, query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "invalid_request", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    let (status, _) = events(&app, "not-a-key", "").await;
    assert_eq!(status, 401);
}

/// Waits until `/metrics` says `n` accounts are listened to.
async fn until_listening_accounts(app: &TestApp, n: usize) {
    let line = format!("tiktok_dm_accounts_listening {n}\n");
    for _ in 0..200 {
        if app.get_text("/metrics").await.contains(&line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} accounts are not listened to");
}

/// The texts of the received messages the key sees, in log order.
async fn received_texts(app: &TestApp, key: &str) -> Vec<String> {
    let (_, all) = events(app, key, "?types=message.received").await;
    all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the key sees `n` received messages (or gives up after 10 s).
async fn until_received_texts(app: &TestApp, key: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let texts = received_texts(app, key).await;
        if texts.len() >= n {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    received_texts(app, key).await
}

async fn switch_listening(app: &TestApp, name: &str, listen: bool) {
    let (status, answer) = crate::admin(
        app,
        reqwest::Method::PATCH,
        &format!("/v1/admin/accounts/{name}"),
        Some(json!({"listen": listen})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["listen"], listen);
}

#[tokio::test]
async fn an_account_switched_off_is_not_listened_to_and_catches_up_when_switched_back_on() {
    // Idle sessions close after a second: an unpinned one goes at the next sweep.
    let app = spawn_app_with(|s| s.session_idle = Duration::from_secs(1)).await;
    store_session_as(&app, "shop", crate::ALICE).await;
    let key = key_with_accounts(&app.store, "k", None, &["shop"], false).await;
    until_listening(&app, "alice", 1).await;
    let say = |text: &'static str| {
        inbound(
            &app,
            json!({"from": "bob", "conversation_id": alice_bob(&app), "text": text}),
        )
    };
    say("before").await;
    assert_eq!(until_received_texts(&app, &key, 1).await, ["before"]);

    switch_listening(&app, "shop", false).await;
    until_listening_accounts(&app, 0).await;
    say("while off 1").await;
    say("while off 2").await;
    // The listener's session is no longer pinned: it closes as idle.
    let alice = app.sandbox.handle.account("alice").unwrap().uid;
    for _ in 0..300 {
        if app.sandbox.handle.open_sockets(alice) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.sandbox.handle.open_sockets(alice),
        0,
        "the session idled out"
    );
    assert_eq!(
        received_texts(&app, &key).await,
        ["before"],
        "nothing is logged while the account is switched off"
    );

    // Back on: the listener starts from the saved cursors and catches up
    // what came meanwhile, each message once.
    switch_listening(&app, "shop", true).await;
    until_listening(&app, "alice", 1).await;
    assert_eq!(
        until_received_texts(&app, &key, 3).await,
        ["before", "while off 1", "while off 2"]
    );
    say("after").await;
    assert_eq!(
        until_received_texts(&app, &key, 4).await,
        ["before", "while off 1", "while off 2", "after"]
    );
    until_listening_accounts(&app, 1).await;
}
