//! The database going away under a running gateway: PostgreSQL behind a TCP
//! proxy that cuts every connection, as a server restart or a network fault
//! does.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::secrets::{Vault, issue_key};
use tiktok_dm_gateway::{Application, Settings};
use tiktok_dm_store::{NewApiKey, PostgresStore, Store as _};
use tiktok_dm_test_support::postgres::PgSchema;
use tiktok_dm_test_support::{spawn_proxy, spawn_sandbox};

use crate::ALICE;

/// `host:port` of a `postgres://user@host:port/db...` URL.
fn host_and_port(url: &str) -> &str {
    let after_user = url.split_once('@').map_or(url, |(_, rest)| rest);
    after_user
        .split(['/', '?'])
        .next()
        .filter(|h| h.contains(':'))
        .unwrap_or_else(|| panic!("this test needs host:port in the PostgreSQL URL"))
}

#[tokio::test]
async fn while_the_database_is_down_requests_answer_503_and_a_retry_goes_through_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let schema = PgSchema::create().await;
    let server = host_and_port(&schema.url);
    let target: SocketAddr = tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = spawn_proxy(target).await;
    let url = schema.url.replacen(server, &proxy.addr.to_string(), 1);
    let store = PostgresStore::open(&url).await.unwrap();
    let issued = issue_key();
    let new = NewApiKey {
        name: "default".into(),
        prefix: issued.prefix.clone(),
        key_hash: issued.hash,
        daily_limit: Some(100),
        monthly_limit: None,
        account: None,
    };
    store.create_api_key(new, 0).await.unwrap();
    let key = issued.secret.expose_secret().to_owned();
    let sandbox = spawn_sandbox().await;
    let settings = Settings::new(Endpoints::sandbox(&sandbox.base_url()).unwrap());
    let app = Application::build("127.0.0.1:0", settings, store, Vault::from_key(&[9; 32]))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let c = &sandbox.handle.seed().conversations[0];
    let body = |text: &str| serde_json::json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string(), "text": text});
    let http = reqwest::Client::new();
    let send = |text: &str| {
        http.post(format!("{base}/v1/messages"))
            .bearer_auth(&key)
            .header("x-tiktok-session", ALICE)
            .header("idempotency-key", format!("key-of-{text}"))
            .json(&body(text))
            .send()
    };
    assert_eq!(send("before").await.unwrap().status(), 200);

    proxy.down();
    let answer = send("during").await.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "5");
    let text = answer.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["error"]["code"], "database_unavailable", "{json}");
    assert!(!text.contains(&proxy.addr.port().to_string()), "{text}");
    let usage = http
        .get(format!("{base}/v1/usage"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 503);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(sandbox.handle.messages().len(), 1, "nothing went out");

    proxy.up();
    // The same request again, as the answer advised: taken once, delivered once.
    let mut status = 0;
    for _ in 0..50 {
        status = send("during").await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the database is back");
    assert_eq!(send("during").await.unwrap().status(), 200, "a repeat");
    let texts: Vec<serde_json::Value> = sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.content["text"].clone())
        .collect();
    assert_eq!(texts, ["before", "during"]);
    let used = http
        .get(format!("{base}/v1/usage"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(used["quota"]["daily"]["used"], 2, "{used}");
}
