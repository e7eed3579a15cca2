//! The database going away under a running gateway: PostgreSQL behind a TCP
//! proxy that cuts every connection, as a server restart or a network fault
//! does.

use std::net::SocketAddr;
use std::time::Duration;

use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::secrets::Vault;
use tiktok_dm_gateway::{Application, Settings};
use tiktok_dm_store::PostgresStore;
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

/// A gateway on PostgreSQL reached through a proxy the test can cut, with a
/// key limited to 100 messages a day.
struct PgApp {
    base: String,
    key: String,
    proxy: tiktok_dm_test_support::Proxy,
    sandbox: tiktok_dm_test_support::TestSandbox,
    schema: PgSchema,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PgApp {
    /// `None` (the test is skipped) without a PostgreSQL server.
    async fn spawn(adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let schema = PgSchema::create().await?;
        let server = host_and_port(&schema.url);
        let target: SocketAddr = tokio::net::lookup_host(server)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = spawn_proxy(target).await;
        let url = schema.url.replacen(server, &proxy.addr.to_string(), 1);
        let store = PostgresStore::open(&url).await.unwrap();
        let key = crate::new_key(&store, "default", Some(100)).await;
        let sandbox = spawn_sandbox().await;
        let mut settings = Settings::new(Endpoints::sandbox(&sandbox.base_url()).unwrap());
        adjust(&mut settings);
        let app = Application::build("127.0.0.1:0", settings, store, Vault::from_key(&[9; 32]))
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Some(Self {
            base,
            key,
            proxy,
            sandbox,
            schema,
            http: reqwest::Client::new(),
            _stop: stop,
        })
    }

    /// A send of `text` with alice's session and the Idempotency-Key `key-of-TEXT`.
    fn send(&self, text: &str) -> reqwest::RequestBuilder {
        let c = &self.sandbox.handle.seed().conversations[0];
        self.http
            .post(format!("{}/v1/messages", self.base))
            .bearer_auth(&self.key)
            .header("x-tiktok-session", ALICE)
            .header("idempotency-key", format!("key-of-{text}"))
            .json(&serde_json::json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string(), "text": text}))
    }

    /// The outbox's rows as `state:attempts`, in order, once they are
    /// `expected` (or as they are after `secs`).
    async fn outbox_until(&self, expected: &[&str], secs: u64) -> Vec<String> {
        let mut rows = Vec::new();
        for _ in 0..secs * 20 {
            rows = self
                .schema
                .query_text("SELECT state || ':' || attempts FROM outbox ORDER BY id")
                .await;
            if rows == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rows
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }
}

#[tokio::test]
async fn while_the_database_is_down_requests_answer_503_and_a_retry_goes_through_once() {
    let Some(app) = PgApp::spawn(|_| {}).await else {
        return;
    };
    assert_eq!(app.send("before").send().await.unwrap().status(), 200);

    app.proxy.down();
    let answer = app.send("during").send().await.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "5");
    let text = answer.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["error"]["code"], "database_unavailable", "{json}");
    assert!(!text.contains(&app.proxy.addr.port().to_string()), "{text}");
    assert_eq!(app.get("/v1/usage").send().await.unwrap().status(), 503);
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 503);
    assert_eq!(app.sandbox.handle.messages().len(), 1, "nothing went out");

    app.proxy.up();
    // The same request again, as the answer advised: taken once, delivered once.
    let mut status = 0;
    for _ in 0..50 {
        status = app.send("during").send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the database is back");
    assert_eq!(
        app.send("during").send().await.unwrap().status(),
        200,
        "a repeat"
    );
    let texts: Vec<serde_json::Value> = app
        .sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.content["text"].clone())
        .collect();
    assert_eq!(texts, ["before", "during"]);
    let used: serde_json::Value = app
        .get("/v1/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(used["quota"]["daily"]["used"], 2, "{used}");
}

#[tokio::test]
async fn a_delivery_made_while_the_database_is_down_is_recorded_once_it_is_back() {
    let Some(app) = PgApp::spawn(|s| s.lease = Duration::from_secs(30)).await else {
        return;
    };
    assert_eq!(app.send("warm-up").send().await.unwrap().status(), 200);
    app.sandbox
        .handle
        .delay_acks(Duration::from_millis(1500), 1);
    let answer = app
        .send("acknowledged during the outage")
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    crate::until_received(&app.sandbox, 2, 5).await;
    assert_eq!(app.sandbox.handle.messages().len(), 2, "it went out");
    // TikTok's acknowledgement comes while the database is away.
    app.proxy.down();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.proxy.up();
    // Recorded within seconds of the database's return, not after the lease
    // (30 s), when it would go out a second time.
    let states = app.outbox_until(&["sent:1", "sent:1"], 5).await;
    assert_eq!(states, ["sent:1", "sent:1"]);
    assert_eq!(app.sandbox.handle.messages().len(), 2);
}

#[tokio::test]
async fn a_retry_that_falls_due_while_the_database_is_down_goes_out_once_it_is_back() {
    let Some(app) = PgApp::spawn(|_| {}).await else {
        return;
    };
    assert_eq!(app.send("warm-up").send().await.unwrap().status(), 200);
    app.sandbox.handle.server_error(1);
    let answer = app
        .send("retried")
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let states = app.outbox_until(&["sent:1", "accepted:1"], 5).await;
    assert_eq!(states, ["sent:1", "accepted:1"], "the first attempt failed");
    // Its next attempt (1 s later) falls due while every claim fails.
    app.proxy.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.proxy.up();
    let states = app.outbox_until(&["sent:1", "sent:2"], 10).await;
    assert_eq!(states, ["sent:1", "sent:2"], "the worker claims again");
    assert_eq!(app.sandbox.handle.messages().len(), 2);
}
