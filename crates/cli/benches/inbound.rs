//! Inbound figures (issue 18), written into docs/benchmarks.md by hand:
//! - the memory of `tiktok-dm serve` listening on 1,000 stored accounts (one
//!   socket each, all connected and caught up);
//! - the time from a message the sandbox pushes to one of them to its
//!   webhook's arrival at a receiver on loopback, one message at a time.
//!
//! The sandbox and the receiver run in this process; the gateway is the real
//! binary, its own process, on a fresh SQLite file.
//! Run: `cargo bench -p tiktok-dm-cli --bench inbound`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tiktok_dm_gateway::secrets::{SealContext, Vault, issue_key};
use tiktok_dm_store::{NewApiKey, SqliteStore, Store as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CROWD: u32 = 1_000;
const MESSAGES: usize = 300;
const MASTER: [u8; 32] = [7; 32];

/// A webhook receiver: every request's arrival time and body.
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 8192];
                    let n = match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        let body = buf[end + 4..end + 4 + len].to_vec();
                        let _ = tx.send((Instant::now(), body));
                        buf.drain(..end + 4 + len);
                        socket
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    (url, rx)
}

fn spawn_gateway(db: &str, sandbox_url: &str) -> (Child, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(MASTER);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiktok-dm"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            db,
            "--sandbox-url",
            sandbox_url,
        ])
        .env("TIKTOK_DM_MASTER_KEY", key)
        .env("TIKTOK_DM_ALLOW_PRIVATE_WEBHOOKS", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    (child, ready["url"].as_str().unwrap().to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The crowd's accounts stored as the gateway stores them, and a key that
/// may use `user-1`.
async fn store_crowd(
    db: &str,
    seed: &tiktok_dm_sandbox::Seed,
) -> tiktok_dm_gateway::secrets::IssuedKey {
    let store = SqliteStore::open(db).await.unwrap();
    let vault = Vault::from_key(&MASTER);
    let users: Vec<_> = seed
        .accounts
        .iter()
        .filter(|a| a.name.starts_with("user-"))
        .collect();
    for a in &users {
        let sealed = vault
            .seal(a.session.as_bytes(), SealContext::Account(&a.name))
            .unwrap();
        store.put_account(&a.name, &sealed, 0).await.unwrap();
    }
    let issued = issue_key();
    store
        .create_api_key(
            NewApiKey {
                name: "bench".into(),
                prefix: issued.prefix.clone(),
                key_hash: issued.hash,
                daily_limit: None,
                monthly_limit: None,
                accounts: vec!["user-1".into()],
                any_account: false,
            },
            0,
        )
        .await
        .unwrap();
    issued
}

/// The time from each message posted to the sandbox to its webhook's
/// arrival, one at a time, the first 20 left out.
async fn push_to_webhook(
    http: &reqwest::Client,
    sandbox_url: &str,
    conversation: &str,
    arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
) -> Vec<Duration> {
    let inbound = format!("{sandbox_url}/_sandbox/inbound");
    let mut latencies = Vec::new();
    for i in 0..MESSAGES + 20 {
        let t0 = Instant::now();
        let answer = http
            .post(&inbound)
            .json(&json!({"from": "bob", "conversation_id": conversation, "text": format!("m{i}")}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        let (arrived, body) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .unwrap()
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["data"]["text"], format!("m{i}"));
        if i >= 20 {
            latencies.push(arrived - t0);
        }
    }
    latencies
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed = tiktok_dm_sandbox::Seed::with_crowd(CROWD).unwrap();
    let sandbox = tiktok_dm_sandbox::Sandbox::new(seed.clone()).unwrap();
    let handle = sandbox.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sandbox.run(listener, std::future::pending()));

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inbound.sqlite");
    let db = db.to_str().unwrap().to_owned();
    let issued = store_crowd(&db, &seed).await;

    let started = Instant::now();
    let (mut gateway, url) = spawn_gateway(&db, &sandbox_url);
    let pid = gateway.id();
    let at_start = tiktok_dm_test_support::rss_kib(pid);
    while handle.handshakes() < u64::from(CROWD) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} sockets",
            handle.handshakes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_listening = started.elapsed();
    // Every listener's first catch-up (an inbox listing each) done.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let listening_rss = tiktok_dm_test_support::rss_kib(pid);

    let (hook, mut arrivals) = receiver().await;
    let http = reqwest::Client::new();
    let secret = issued.secret.clone();
    use secrecy::ExposeSecret as _;
    let created = http
        .post(format!("{url}/v1/webhooks"))
        .bearer_auth(secret.expose_secret())
        .json(&json!({"url": hook, "events": ["message.received"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let conversation = seed.conversations[2].conversation_id.to_string();
    let mut latencies = push_to_webhook(&http, &sandbox_url, &conversation, &mut arrivals).await;
    latencies.sort();
    let after_rss = tiktok_dm_test_support::rss_kib(pid);
    let _ = gateway.kill();
    let _ = gateway.wait();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{CROWD} listening accounts: all sockets open {:.1} s after start",
        all_listening.as_secs_f64()
    );
    println!(
        "gateway RSS: {at_start} KiB at start, {listening_rss} KiB listening on {CROWD} accounts ({:.1} MiB), {after_rss} KiB after {MESSAGES} webhooks",
        listening_rss as f64 / 1024.0
    );
    println!(
        "sandbox push to webhook arrival, {MESSAGES} messages one at a time: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
}
