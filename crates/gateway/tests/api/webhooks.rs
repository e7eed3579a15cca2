//! Webhooks end to end: a real HTTP receiver on 127.0.0.1:0 as the target,
//! events appended to the gateway's store, signatures checked here with
//! `hmac` and `sha2` (and by the Standard Webhooks Python package).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::secrets::Vault;
use tiktok_dm_gateway::{Application, Settings};
use tiktok_dm_store::{NewEvent, SqliteStore, Store};

use crate::{TestApp, key_with_accounts, spawn_app_with};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Captured {
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook target: records every request, answers the statuses queued
/// (then `fallback`).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Captured>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    fallback: Arc<Mutex<u16>>,
}

impl Receiver {
    pub async fn spawn(script: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self {
            url: format!("http://{addr}/hook"),
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            fallback: Arc::new(Mutex::new(200)),
        };
        let r = receiver.clone();
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let r = r.clone();
                async move {
                    r.got.lock().unwrap().push(Captured {
                        headers,
                        body: body.to_vec(),
                        at: Instant::now(),
                    });
                    let next = r.script.lock().unwrap().pop_front();
                    let status = next.unwrap_or(*r.fallback.lock().unwrap());
                    StatusCode::from_u16(status).unwrap()
                }
            });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn got(&self) -> Vec<Captured> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (or `secs` passed); what came.
    pub async fn until(&self, n: usize, secs: u64) -> Vec<Captured> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.got.lock().unwrap().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.got()
    }
}

/// A gateway that may post to loopback.
pub async fn app() -> TestApp {
    spawn_app_with(|s| s.allow_private_webhooks = true).await
}

/// A key that may see every account.
pub async fn any_key<S: Store>(store: &S, name: &str) -> String {
    key_with_accounts(store, name, None, &[], true).await
}

pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn create(app: &TestApp, key: &str, url: &str, events: &[&str]) -> (u16, Value) {
    let body = json!({"url": url, "events": events}).to_string();
    call(app, reqwest::Method::POST, "/v1/webhooks", key, Some(&body)).await
}

/// Appends a `message.received` of account `shop` saying `text`; its cursor.
pub async fn append<S: Store>(store: &S, text: &str) -> i64 {
    append_at(store, text, tiktok_dm_gateway::now_ms()).await
}

/// [`append`], logged at `now` (ms).
pub async fn append_at<S: Store>(store: &S, text: &str, now: i64) -> i64 {
    let payload = json!({"account": "shop", "conversation_id": "0:1:1:2", "server_message_id": text, "direction": "inbound", "kind": "text", "text": text});
    let event = NewEvent {
        account: "shop".into(),
        event_type: "message.received".into(),
        conversation_id: Some("0:1:1:2".into()),
        dedupe_key: Some(format!("msg:{text}")),
        payload: payload.to_string(),
        occurred_at: now - 5,
    };
    let appended = store.append_events(vec![event], now).await.unwrap();
    appended[0].cursor().unwrap()
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
/// secret's decoded bytes, computed here, not by the gateway.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_webhook_receives_events_signed_as_standard_webhooks_says() {
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let receiver = Receiver::spawn(&[]).await;
    let (status, created) = create(&app, &key, &receiver.url, &["message.received"]).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(created["id"].as_str().unwrap().starts_with("wh_"));
    assert_eq!(created["url"], receiver.url.as_str());
    assert_eq!(created["events"], json!(["message.received"]));
    let cursor = append(&app.store, "hello").await;
    let got = receiver.until(1, 10).await;
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.header("webhook-id"), format!("evt_{cursor}"));
    assert_eq!(d.header("content-type"), "application/json");
    assert!(
        d.header("user-agent").starts_with("tiktok-dm"),
        "{:?}",
        d.headers
    );
    let timestamp = d.header("webhook-timestamp");
    let now = tiktok_dm_gateway::now_ms() / 1000;
    assert!(
        (now - timestamp.parse::<i64>().unwrap()).abs() < 30,
        "{timestamp}"
    );
    assert_eq!(
        d.header("webhook-signature"),
        expected_signature(&secret, &d.header("webhook-id"), &timestamp, &d.body)
    );
    let body = d.json();
    assert_eq!(body["type"], "message.received");
    assert_eq!(body["data"]["text"], "hello");
    assert_eq!(body["data"]["direction"], "inbound");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    // The secret is in no other answer.
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(listed["webhooks"][0]["id"], created["id"]);
    assert!(!listed.to_string().contains(&secret[6..]), "{listed}");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_webhook_attempts_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_the_same_webhook_id_until_it_takes_it() {
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let receiver = Receiver::spawn(&[500, 500]).await;
    let (status, created) = create(&app, &key, &receiver.url, &["*"]).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["events"].as_array().unwrap().len(), 7);
    let started = Instant::now();
    let cursor = append(&app.store, "again").await;
    let got = receiver.until(3, 20).await;
    assert_eq!(got.len(), 3, "three attempts");
    for d in &got {
        assert_eq!(d.header("webhook-id"), format!("evt_{cursor}"));
        let secret = created["secret"].as_str().unwrap();
        let ts = d.header("webhook-timestamp");
        assert_eq!(
            d.header("webhook-signature"),
            expected_signature(secret, &d.header("webhook-id"), &ts, &d.body)
        );
    }
    eprintln!(
        "attempts after {:?}, {:?}, {:?}",
        got[0].at - started,
        got[1].at - started,
        got[2].at - started
    );
    // Full jitter: the first retry within 1 s, the second within 2 s of it.
    assert!(got[1].at - got[0].at <= Duration::from_millis(2_100));
    assert!(got[2].at - got[1].at <= Duration::from_millis(3_100));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.got().len(), 3, "nothing after the 200");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_webhook_attempts_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tiktok_dm_webhook_attempts_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tiktok_dm_webhook_deliveries_pending 0"),
        "{metrics}"
    );
}

/// A gateway on the SQLite file `path` (vault key 9s), stopped by its sender.
async fn gateway_on(
    path: &std::path::Path,
    allow_private: bool,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    let mut settings = Settings::new(Endpoints::sandbox("http://127.0.0.1:9").unwrap());
    settings.allow_private_webhooks = allow_private;
    let app = Application::build("127.0.0.1:0", settings, store, Vault::from_key(&[9; 32]))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    (base, stop, served)
}

#[tokio::test]
async fn deliveries_pending_when_the_gateway_stops_are_made_after_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.sqlite");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    let key = any_key(&store, "hooks").await;
    let receiver = Receiver::spawn(&[]).await;
    *receiver.fallback.lock().unwrap() = 503;
    let (base, stop, served) = gateway_on(&path, true).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "events": ["message.received"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["id"].is_string(), "{created}");
    let first = append(&store, "before the stop").await;
    assert!(
        !receiver.until(1, 10).await.is_empty(),
        "an attempt was made"
    );
    drop(stop);
    served.await.unwrap().unwrap();
    let second = append(&store, "while stopped").await;
    let tried = receiver.got().len();
    *receiver.fallback.lock().unwrap() = 200;
    let (_base, _stop, _served) = gateway_on(&path, true).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let delivered = loop {
        let ok: Vec<String> = receiver.got()[tried..]
            .iter()
            .map(|c| c.header("webhook-id"))
            .collect();
        if (ok.contains(&format!("evt_{first}")) && ok.contains(&format!("evt_{second}")))
            || Instant::now() > deadline
        {
            break ok;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(delivered.contains(&format!("evt_{first}")), "{delivered:?}");
    assert!(
        delivered.contains(&format!("evt_{second}")),
        "{delivered:?}"
    );
    assert_eq!(
        store.webhook_delivery_stats().await.unwrap().pending,
        0,
        "nothing left"
    );
}

#[tokio::test]
async fn a_replay_delivers_the_events_again_and_a_deleted_webhook_gets_nothing_more() {
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let receiver = Receiver::spawn(&[]).await;
    let (_, created) = create(&app, &key, &receiver.url, &["message.received"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let a = append(&app.store, "one").await;
    let b = append(&app.store, "two").await;
    assert_eq!(receiver.until(2, 10).await.len(), 2);
    let path = format!("/v1/webhooks/{id}/replay");
    let since = json!({"since": a.to_string()}).to_string();
    let (status, answer) = call(&app, reqwest::Method::POST, &path, &key, Some(&since)).await;
    assert_eq!(
        (status, answer["queued"].clone()),
        (202, json!(1)),
        "{answer}"
    );
    let got = receiver.until(3, 10).await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[2].header("webhook-id"),
        format!("evt_{b}"),
        "the same id again"
    );
    let (status, answer) = call(
        &app,
        reqwest::Method::POST,
        &path,
        &key,
        Some(r#"{"since": 0}"#),
    )
    .await;
    assert_eq!((status, answer["queued"].clone()), (202, json!(2)));
    assert_eq!(receiver.until(5, 10).await.len(), 5);
    let gone = format!("/v1/webhooks/{id}");
    let (status, _) = call(&app, reqwest::Method::DELETE, &gone, &key, None).await;
    assert_eq!(status, 204);
    append(&app.store, "three").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(receiver.got().len(), 5, "nothing after the delete");
    let (status, answer) = call(&app, reqwest::Method::DELETE, &gone, &key, None).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("webhook_not_found"))
    );
    let (status, answer) = call(
        &app,
        reqwest::Method::POST,
        &path,
        &key,
        Some(r#"{"since": 0}"#),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("webhook_not_found"))
    );
}

#[tokio::test]
async fn a_key_sees_and_changes_only_its_own_webhooks() {
    let app = app().await;
    let mine = any_key(&app.store, "mine").await;
    let theirs = any_key(&app.store, "theirs").await;
    let (_, created) = create(&app, &mine, "http://127.0.0.1:9/x", &["typing"]).await;
    let id = created["id"].as_str().unwrap();
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &theirs, None).await;
    assert_eq!(listed, json!({"success": true, "webhooks": []}));
    for (method, path, body) in [
        (reqwest::Method::DELETE, format!("/v1/webhooks/{id}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/webhooks/{id}/replay"),
            Some(r#"{"since": 0}"#),
        ),
        (
            reqwest::Method::DELETE,
            "/v1/webhooks/wh_nothing".to_owned(),
            None,
        ),
        (reqwest::Method::DELETE, "/v1/webhooks/%00".to_owned(), None),
    ] {
        let (status, answer) = call(&app, method.clone(), &path, &theirs, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "webhook_not_found");
    }
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &mine, None).await;
    assert_eq!(
        listed["webhooks"].as_array().unwrap().len(),
        1,
        "still there"
    );
    let (status, _) = call(&app, reqwest::Method::GET, "/v1/webhooks", "tdm_nope", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn private_urls_are_refused_at_creation_unless_allowed() {
    let app = spawn_app_with(|_| {}).await;
    let key = any_key(&app.store, "hooks").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://localhost:9/x",
    ] {
        let (status, answer) = create(&app, &key, url, &["message.received"]).await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], "webhook_url_not_allowed", "{url}");
    }
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(listed["webhooks"], json!([]));
}

#[tokio::test]
async fn a_private_destination_is_not_posted_to_when_not_allowed_and_the_delivery_says_why() {
    let app = spawn_app_with(|_| {}).await;
    let receiver = Receiver::spawn(&[]).await;
    let key = any_key(&app.store, "hooks").await;
    let key_id = app.store.list_api_keys().await.unwrap()[0].id;
    assert_eq!(app.store.list_api_keys().await.unwrap()[0].name, "hooks");
    let vault = Vault::from_key(&app.vault_key);
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    // Created while allowed (as `webhooks add --allow-private` does), posted
    // by a gateway that does not allow it: once by address, once by a name
    // that resolves to loopback.
    for url in [receiver.url.as_str(), by_name.as_str()] {
        let events = vec!["message.received".to_owned()];
        tiktok_dm_gateway::webhooks::create(&app.store, &vault, key_id, url, &events, true, 0)
            .await
            .unwrap();
    }
    let (_, listed) = call(&app, reqwest::Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
    append(&app.store, "not for loopback").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = delivery_rows(&app.database());
        if rows.iter().all(|(state, _)| state == "failed") || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (state, error) in &rows {
        assert_eq!(state, "failed");
        assert!(error.contains("loopback, private or reserved"), "{error}");
    }
    assert!(receiver.got().is_empty(), "nothing was posted");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("tiktok_dm_webhook_attempts_total{outcome=\"gave_up\"} 2"),
        "{metrics}"
    );
}

/// Every delivery's state and error, read from the database file.
fn delivery_rows(path: &std::path::Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut stmt = db
        .prepare("SELECT state, COALESCE(error, '') FROM webhook_deliveries ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn bad_webhook_bodies_get_specific_errors() {
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let long = format!("https://example.com/{}", "a".repeat(2048));
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "invalid_json"),
        (
            r#"{"url": "https://example.com/", "events": ["typing"], "x": 1}"#.into(),
            "invalid_json",
        ),
        (r#"{"url": 5, "events": ["typing"]}"#.into(), "invalid_json"),
        (r#"{"events": ["typing"]}"#.into(), "webhook_url_invalid"),
        (
            r#"{"url": "ftp://example.com/", "events": ["typing"]}"#.into(),
            "webhook_url_invalid",
        ),
        (
            r#"{"url": "/relative", "events": ["typing"]}"#.into(),
            "webhook_url_invalid",
        ),
        (
            r#"{"url": "https://u:p@example.com/", "events": ["typing"]}"#.into(),
            "webhook_url_invalid",
        ),
        (
            json!({"url": long, "events": ["typing"]}).to_string(),
            "webhook_url_invalid",
        ),
        (
            r#"{"url": "https://example.com/"}"#.into(),
            "webhook_events_invalid",
        ),
        (
            r#"{"url": "https://example.com/", "events": []}"#.into(),
            "webhook_events_invalid",
        ),
        (
            r#"{"url": "https://example.com/", "events": ["message.recieved"]}"#.into(),
            "webhook_events_invalid",
        ),
    ];
    for (body, code) in &cases {
        let (status, answer) = call(
            &app,
            reqwest::Method::POST,
            "/v1/webhooks",
            &key,
            Some(body),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(*code)),
            "{body}: {answer}"
        );
    }
    let (_, created) = create(&app, &key, "http://127.0.0.1:9/0", &["typing"]).await;
    let replay = format!("/v1/webhooks/{}/replay", created["id"].as_str().unwrap());
    for body in [
        "{}",
        r#"{"since": -1}"#,
        r#"{"since": "abc"}"#,
        r#"{"since": "+5"}"#,
        r#"{"since": 1.5}"#,
        r#"{"since": null}"#,
    ] {
        let (status, answer) = call(&app, reqwest::Method::POST, &replay, &key, Some(body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("cursor_invalid")),
            "{body}"
        );
    }
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        &replay,
        &key,
        Some(r#"{"since": "5"}"#),
    )
    .await;
    assert_eq!(status, 202);
    for i in 1..10 {
        let (status, _) = create(&app, &key, &format!("http://127.0.0.1:9/{i}"), &["typing"]).await;
        assert_eq!(status, 201);
    }
    let (status, answer) = create(&app, &key, "http://127.0.0.1:9/11", &["typing"]).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("webhook_limit_reached"))
    );
}

/// The Python interpreter for the Standard Webhooks check: `TDM_PYTHON`, else
/// `python3`.
fn python() -> String {
    std::env::var("TDM_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn the_standard_webhooks_python_package_verifies_our_signatures() {
    let importable = std::process::Command::new(python())
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        assert!(
            std::env::var_os("TDM_REQUIRE_PYTHON_WEBHOOKS").is_none(),
            "TDM_REQUIRE_PYTHON_WEBHOOKS is set but {} cannot import standardwebhooks",
            python()
        );
        eprintln!(
            "skipped: {} cannot import standardwebhooks; run `pip install standardwebhooks==1.1.0` (or set TDM_PYTHON to an interpreter that has it) to run this check",
            python()
        );
        return;
    }
    let app = app().await;
    let key = any_key(&app.store, "hooks").await;
    let receiver = Receiver::spawn(&[]).await;
    let (_, created) = create(&app, &key, &receiver.url, &["message.received"]).await;
    append(&app.store, "verify me ✓").await;
    let d = receiver.until(1, 10).await.remove(0);
    let headers = json!({
        "webhook-id": d.header("webhook-id"),
        "webhook-timestamp": d.header("webhook-timestamp"),
        "webhook-signature": d.header("webhook-signature"),
    });
    let script = "import json, sys\nfrom standardwebhooks import Webhook\nsecret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()\nprint(json.dumps(Webhook(secret).verify(body, headers)))\ntampered = body.replace(b'verify', b'forged')\ntry:\n    Webhook(secret).verify(tampered, headers)\n    sys.exit('a tampered body was accepted')\nexcept Exception:\n    pass\n";
    let mut child = std::process::Command::new(python())
        .args([
            "-c",
            script,
            created["secret"].as_str().unwrap(),
            &headers.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&d.body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified["data"]["text"], "verify me ✓");
}

/// A 1x1 PNG.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[tokio::test]
async fn a_message_sent_to_a_listening_account_reaches_the_webhook() {
    use crate::inbound::{alice_bob, inbound, store_session_as, until_listening};
    let app = app().await;
    store_session_as(&app, "shop", crate::ALICE).await;
    let key = key_with_accounts(&app.store, "shop-key", None, &["shop"], false).await;
    let receiver = Receiver::spawn(&[]).await;
    let (status, _) = create(&app, &key, &receiver.url, &["message.received"]).await;
    assert_eq!(status, 201);
    until_listening(&app, "alice", 1).await;

    let conversation = alice_bob(&app);
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": conversation, "text": "hello shop"}),
    )
    .await;
    inbound(
        &app,
        json!({"from": "bob", "conversation_id": conversation, "image": PNG_1X1}),
    )
    .await;
    let got = receiver.until(2, 10).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let mut bodies: Vec<Value> = got.iter().map(Captured::json).collect();
    bodies.sort_by_key(|b| b["data"]["kind"].as_str().unwrap().to_owned());
    let (image, text) = (&bodies[0], &bodies[1]);
    assert_eq!(text["type"], "message.received");
    assert_eq!(text["data"]["account"], "shop");
    assert_eq!(text["data"]["text"], "hello shop");
    assert_eq!(text["data"]["direction"], "inbound");
    assert_eq!(text["data"]["conversation_id"], conversation.as_str());
    assert_eq!(image["data"]["kind"], "image");
    assert_eq!(image["data"]["image"]["width"], 1);
    assert!(image["data"]["image"]["path"].is_string());
    assert!(
        image["data"]["image"].get("decrypt_key").is_none(),
        "the image's key stays in the gateway: {image}"
    );
}
