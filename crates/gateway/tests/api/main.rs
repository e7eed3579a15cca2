//! The gateway over real sockets: sandbox and gateway on 127.0.0.1:0, a fresh
//! SQLite file per test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod addressing;
mod admin;
mod conversations;
mod database;
mod delivery;
mod failures;
mod form;
mod fuzz_corpus;
mod inbound;
mod limits;
mod ops;
mod outage;
mod retention;
mod send;
mod webhooks;
mod webhooks_queue;

use std::net::SocketAddr;

use secrecy::ExposeSecret as _;
use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::secrets::{Vault, issue_key};
use tiktok_dm_gateway::{Application, Settings};
use tiktok_dm_store::{NewApiKey, SqliteStore, Store};
use tiktok_dm_test_support::{Proxy, TestSandbox, spawn_proxy, spawn_sandbox};

pub const ALICE: &str = "sandbox-session-alice";

pub struct TestApp {
    pub addr: SocketAddr,
    pub sandbox: TestSandbox,
    pub proxy: Option<Proxy>,
    pub store: SqliteStore,
    pub vault_key: [u8; 32],
    pub key: String,
    pub http: reqwest::Client,
    /// Ends the gateway's `run` (also when dropped).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Stops the gateway as `serve` does on a signal and waits until its `run`
    /// has returned.
    pub async fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }

    /// The gateway's SQLite file.
    pub fn database(&self) -> std::path::PathBuf {
        self._dir.path().join("gateway.sqlite")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new API key with the given daily limit.
    pub async fn key_with_limit(&self, name: &str, daily: Option<u32>) -> String {
        new_key(&self.store, name, daily).await
    }

    /// Stores alice's session, sealed as the gateway seals it, as account `name`.
    pub async fn store_alice_as(&self, name: &str) {
        let sealed = Vault::from_key(&self.vault_key)
            .seal(
                ALICE.as_bytes(),
                tiktok_dm_gateway::secrets::SealContext::Account(name),
            )
            .unwrap();
        self.store.put_account(name, &sealed, 0).await.unwrap();
    }

    pub fn body(&self, text: &str) -> serde_json::Value {
        let c = &self.sandbox.handle.seed().conversations[0];
        serde_json::json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.to_string(), "text": text})
    }

    /// GET `path` as text (no key: `/metrics` and the like).
    pub async fn get_text(&self, path: &str) -> String {
        let answer = self.http.get(self.url(path)).send().await.unwrap();
        answer.text().await.unwrap()
    }

    /// GET `path` (with the API key `key`, if any) as JSON.
    pub async fn get_json(&self, path: &str, key: Option<&str>) -> serde_json::Value {
        let mut req = self.http.get(self.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// POST /v1/messages as JSON with the API key and alice's session (unless
    /// `extra` names another `x-tiktok-session`).
    pub async fn post(
        &self,
        key: &str,
        body: &serde_json::Value,
        extra: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(self.url("/v1/messages"))
            .bearer_auth(key)
            .json(body);
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-tiktok-session"))
        {
            req = req.header("x-tiktok-session", ALICE);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

/// A new API key in `store` with the given daily limit: the key itself.
pub async fn new_key<S: Store>(store: &S, name: &str, daily: Option<u32>) -> String {
    key_with_accounts(store, name, daily, &[], false).await
}

/// A new API key that may send as `accounts` (or any, with `any_account`).
pub async fn key_with_accounts<S: Store>(
    store: &S,
    name: &str,
    daily: Option<u32>,
    accounts: &[&str],
    any_account: bool,
) -> String {
    let issued = issue_key();
    let new = NewApiKey {
        name: name.into(),
        prefix: issued.prefix.clone(),
        key_hash: issued.hash,
        daily_limit: daily,
        monthly_limit: None,
        accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        any_account,
    };
    store.create_api_key(new, 0).await.unwrap();
    issued.secret.expose_secret().to_owned()
}

/// Waits until the sandbox holds `n` messages (or gives up after `secs`).
pub async fn until_received(sandbox: &TestSandbox, n: usize, secs: u64) {
    for _ in 0..secs * 50 {
        if sandbox.handle.messages().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The admin key every test app accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A request to the admin API with the admin key: its status and JSON body.
pub async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A test app whose settings `adjust` changes first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    build(adjust, false).await
}

/// A test app that reaches the sandbox through a [`Proxy`] the test can take down.
pub async fn spawn_app_behind_proxy(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    build(adjust, true).await
}

async fn build(adjust: impl FnOnce(&mut Settings), behind_proxy: bool) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("gateway.sqlite").to_str().unwrap())
        .await
        .unwrap();
    let vault_key = [9u8; 32];
    let proxy = if behind_proxy {
        Some(spawn_proxy(sandbox.addr).await)
    } else {
        None
    };
    let upstream = proxy
        .as_ref()
        .map_or_else(|| sandbox.base_url(), Proxy::base_url);
    let mut settings = Settings::new(Endpoints::sandbox(&upstream).unwrap());
    settings.admin_key_hash = Some(tiktok_dm_gateway::secrets::hash_key(ADMIN_KEY));
    adjust(&mut settings);
    let app = Application::build(
        "127.0.0.1:0",
        settings,
        store.clone(),
        Vault::from_key(&vault_key),
    )
    .await
    .unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let mut test = TestApp {
        addr,
        sandbox,
        proxy,
        store,
        vault_key,
        key: String::new(),
        http: reqwest::Client::new(),
        stop: Some(stop),
        served: Some(served),
        _dir: dir,
    };
    test.key = test.key_with_limit("default", None).await;
    test
}
