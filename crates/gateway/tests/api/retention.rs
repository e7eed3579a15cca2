//! Retention (issue 17, fault 8): a delivered message keeps its ids and
//! outcome but not its text, and the worker deletes, at start, the requests
//! that ended longer than `retention` ago.

use std::time::Duration;

use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::secrets::Vault;
use tiktok_dm_gateway::{Application, Settings, now_ms};
use tiktok_dm_store::{
    ClientMessageId, Content, Enqueued, MessageText, NewMessage, NewRequest, PostgresStore,
    SqliteStore, Store, Target,
};
use tiktok_dm_test_support::postgres::PgSchema;
use tiktok_dm_test_support::spawn_sandbox;

use crate::spawn_app;

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn a_delivered_message_keeps_its_ids_and_outcome_but_not_its_text() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(&app.key, &app.body("a private text 4711"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    // The answer may come before the outcome's commit: wait for the row.
    let db = rusqlite::Connection::open(app.database()).unwrap();
    let read = || -> (Option<String>, String, Option<String>, String) {
        db.query_row(
            "SELECT text, state, server_message_id, client_message_id FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    let mut stored = read();
    for _ in 0..100 {
        if stored.1 == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stored = read();
    }
    assert_eq!((stored.0.as_deref(), stored.1.as_str()), (None, "sent"));
    let id = body["id"].as_str().unwrap();
    let answer = app
        .get_json(&format!("/v1/messages/{id}"), Some(&app.key))
        .await;
    let message = &answer["messages"][0];
    assert_eq!(message["state"], "sent", "{answer}");
    assert_eq!(message["server_message_id"].as_str(), stored.2.as_deref());
    assert_eq!(
        message["client_message_id"].as_str(),
        Some(stored.3.as_str())
    );
}

/// A text request `id`, accepted, claimed and sent `days_ago` days ago.
async fn sent_days_ago<S: Store>(store: &S, key: i64, id: &str, days_ago: i64) {
    let at = now_ms() - days_ago * DAY_MS;
    let request = NewRequest {
        id: id.into(),
        api_key_id: key,
        idempotency_key: Some(format!("idem-{id}")),
        request_hash: format!("hash-{id}"),
        account: None,
        session_sealed: None,
        lane: tiktok_dm_store::session_lane("retention"),
        target: Target::parse("0:1:1:2", "42").unwrap(),
        messages: vec![NewMessage {
            client_message_id: ClientMessageId::from_random_bytes(rand_bytes(id)),
            content: Content::Text(MessageText::parse("old news").unwrap()),
        }],
        claim_first_ms: Some(60_000),
    };
    let Enqueued::Accepted {
        claimed: Some(m), ..
    } = store.enqueue(request, &[], at).await.unwrap()
    else {
        panic!("not accepted and claimed");
    };
    assert!(
        store
            .mark_sent(m.claim(), "7000", "ws", at + 1, None)
            .await
            .unwrap()
            .applied
    );
}

fn rand_bytes(id: &str) -> [u8; 16] {
    let mut bytes = [7u8; 16];
    for (i, b) in id.bytes().enumerate() {
        bytes[i % 16] ^= b;
    }
    bytes
}

/// Requests sent 40 and 2 days ago; a gateway with the default retention (30
/// days) starts on them: the old one is deleted (its status answers 404), the
/// recent one stays.
async fn store_events<S: Store>(store: &S) -> Vec<tiktok_dm_store::StoredEvent> {
    store
        .events_after(0, &tiktok_dm_store::EventFilter::default(), 10)
        .await
        .unwrap()
}

async fn old_requests_go_when_the_gateway_starts<S: Store + Clone>(store: S) {
    let key = crate::new_key(&store, "retained", None).await;
    let key_id = store.list_api_keys().await.unwrap()[0].id;
    sent_days_ago(&store, key_id, "req_forty_days", 40).await;
    sent_days_ago(&store, key_id, "req_two_days", 2).await;
    // Events logged 8 days and 1 day ago: the default event retention is 7.
    store.put_account("shop", b"sealed", 0).await.unwrap();
    for (days, id) in [(8, "old"), (1, "recent")] {
        let at = tiktok_dm_gateway::now_ms() - days * 86_400_000;
        let event = tiktok_dm_store::NewEvent {
            account: "shop".into(),
            event_type: "typing".into(),
            conversation_id: None,
            dedupe_key: Some(id.into()),
            payload: "{}".into(),
            occurred_at: at,
        };
        store.append_events(vec![event], at).await.unwrap();
    }
    let sandbox = spawn_sandbox().await;
    let settings = Settings::new(Endpoints::sandbox(&sandbox.base_url()).unwrap());
    assert_eq!(settings.retention, Duration::from_secs(30 * 86_400));
    let app = Application::build(
        "127.0.0.1:0",
        settings,
        store.clone(),
        Vault::from_key(&[9; 32]),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let status_of = |id: &str| {
        http.get(format!("{base}/v1/messages/{id}"))
            .bearer_auth(&key)
            .send()
    };
    let mut old = 0;
    for _ in 0..100 {
        old = status_of("req_forty_days").await.unwrap().status().as_u16();
        if old == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(old, 404, "the request that ended 40 days ago is deleted");
    let mut events = Vec::new();
    for _ in 0..100 {
        events = store_events(&store).await;
        if events.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        events.len(),
        1,
        "the event of 8 days ago is deleted, not the other"
    );
    let recent = status_of("req_two_days").await.unwrap();
    assert_eq!(recent.status().as_u16(), 200);
    let body: serde_json::Value = recent.json().await.unwrap();
    assert_eq!(body["messages"][0]["state"], "sent", "{body}");
}

#[tokio::test]
async fn requests_that_ended_longer_ago_than_retention_are_deleted_on_sqlite() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.sqlite");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    old_requests_go_when_the_gateway_starts(store).await;
}

#[tokio::test]
async fn requests_that_ended_longer_ago_than_retention_are_deleted_on_postgres() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url).await.unwrap();
    old_requests_go_when_the_gateway_starts(store).await;
}
