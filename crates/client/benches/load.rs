//! Load harness (not a test): client to sandbox on loopback. Run with
//! `cargo bench -p tiktok-dm-client --bench load`; results go in
//! docs/benchmarks.md. The sandbox runs in a child process (this same binary with
//! `LOAD_SANDBOX_CHILD=1`) so that the memory figures are the client's alone.
//! Every loop is bounded; the child exits when its stdin closes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tiktok_dm_client::proto::access_key::{TIKTOK_WEB_APP_KEY, access_key};
use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target, TransportMode};
use tiktok_dm_sandbox::{Account, Sandbox, Seed};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Counts heap bytes, so the image run can report its peak exactly (RSS does not
/// grow when freed pages are reused). Its bookkeeping is one atomic per allocation.
#[global_allocator]
static HEAP: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

const SEQUENTIAL: usize = 2_000;
const WS_TOTAL: usize = 40_000;
const WS_CONCURRENCY: usize = 512;
const HTTP_TOTAL: usize = 10_000;
const HTTP_CONCURRENCY: usize = 64;
const IDLE_SESSIONS: usize = 500;

fn main() {
    if std::env::var_os("LOAD_SANDBOX_CHILD").is_some() {
        return child();
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / listing: nothing to list.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(parent());
}

fn child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let sandbox = Sandbox::new(Seed::default_seed().unwrap()).unwrap();
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        });
        sandbox
            .run(listener, async move {
                let _ = stdin_closed.await;
            })
            .await
            .unwrap();
    });
}

struct Report {
    rows: Vec<String>,
}

impl Report {
    fn latency(&mut self, name: &str, mut samples: Vec<Duration>, wall: Duration) {
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        let rate = samples.len() as f64 / wall.as_secs_f64();
        let row = format!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            samples.len(),
            rate,
            us(pct(0.50)),
            us(pct(0.90)),
            us(pct(0.99)),
            us(*samples.last().unwrap())
        );
        println!("{row}");
        self.rows.push(row);
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A 10 MB image sent to the sandbox: end-to-end time (upload, commit, send) and
/// the client's peak memory above what it held before the send.
async fn image_run(base: &str, target: &Target) {
    use tiktok_dm_client::image::Image;
    let bytes = tiktok_dm_test_support::noise_png(1830, 1830, 7);
    let size_mib = bytes.len() as f64 / (1024.0 * 1024.0);
    let s = session(base, TransportMode::Http).await;
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..6 {
        let image = Image::from_bytes(bytes.clone(), 20 * 1024 * 1024).unwrap();
        HEAP.reset_peak_usage();
        let before = HEAP.current_usage();
        let t = Instant::now();
        s.send_image(target, image).await.unwrap();
        times.push(t.elapsed());
        peaks.push(HEAP.peak_usage().saturating_sub(before));
    }
    // The first send also fetches upload credentials; report the rest.
    times.remove(0);
    peaks.remove(0);
    times.sort();
    let peak_kib = *peaks.iter().max().unwrap() as f64 / 1024.0;
    let total = 1.0 + peak_kib / 1024.0 / size_mib;
    println!(
        "10 MB image ({size_mib:.1} MiB PNG, HTTP): end to end p50 {:.1} ms, max {:.1} ms; peak heap above the held image {peak_kib:.0} KiB, so at most {total:.2}x the image in memory",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn session(base: &str, transport: TransportMode) -> Session {
    let config = Config::builder(Credentials::parse("sandbox-session-alice").unwrap())
        .endpoints(Endpoints::sandbox(base).unwrap())
        .transport(transport)
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Session::connect(config).await.unwrap()
}

async fn parent() {
    let (mut child, addr) = spawn_child();
    let base = format!("http://{addr}");
    let seed = Seed::default_seed().unwrap();
    let c = &seed.conversations[0];
    let target = Target::parse(
        c.conversation_id.as_str(),
        &c.conversation_short_id.to_string(),
    )
    .unwrap();
    let text = MessageText::parse("load test message").unwrap();
    let mut report = Report { rows: Vec::new() };
    println!("| run | sends | per second | p50 µs | p90 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|---|---|");
    bare_ws_run(&addr, &seed.accounts[0], &mut report).await;
    sequential_runs(&base, &target, &text, &mut report).await;
    concurrent_runs(&base, &target, &text, &mut report).await;
    idle_sessions_run(&base).await;
    image_run(&base, &target).await;

    let _ = child.stdin.take().map(|mut s| s.write_all(b"\n"));
    let _ = child.wait();
}

/// Starts the sandbox child (this binary with `LOAD_SANDBOX_CHILD=1`) and reads
/// the address it listens on.
fn spawn_child() -> (Child, String) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env("LOAD_SANDBOX_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

/// A bare WebSocket round trip: "hi" and its echo, on a raw socket.
async fn bare_ws_run(addr: &str, alice: &Account, report: &mut Report) {
    let key = access_key(9, TIKTOK_WEB_APP_KEY, alice.wid.as_str());
    let mut request =
        format!("ws://{addr}/ws/v2?aid=1459&fpid=9&access_key={key}&device_platform=web")
            .into_client_request()
            .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "pbbp2".parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", "sessionid=sandbox-session-alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    let wall = Instant::now();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        ws.send(WsMessage::Text("hi".into())).await.unwrap();
        let _ = ws.next().await.unwrap().unwrap();
        samples.push(t.elapsed());
    }
    report.latency(
        "bare WebSocket round trip (\"hi\")",
        samples,
        wall.elapsed(),
    );
}

/// One send at a time through the client, over WS and then HTTP.
async fn sequential_runs(base: &str, target: &Target, text: &MessageText, report: &mut Report) {
    for (name, transport) in [
        ("client send, sequential, WS", TransportMode::Ws),
        ("client send, sequential, HTTP", TransportMode::Http),
    ] {
        let s = session(base, transport).await;
        // Warm up the connection (and the HTTP pool).
        for _ in 0..50 {
            s.send_text_with_id(target, text, &Session::new_client_message_id())
                .await
                .unwrap();
        }
        let mut samples = Vec::with_capacity(SEQUENTIAL);
        let wall = Instant::now();
        for _ in 0..SEQUENTIAL {
            let t = Instant::now();
            s.send_text_with_id(target, text, &Session::new_client_message_id())
                .await
                .unwrap();
            samples.push(t.elapsed());
        }
        report.latency(name, samples, wall.elapsed());
        s.close();
    }
}

/// Many sends in flight on one session: 512 over one WebSocket, 64 over HTTP.
async fn concurrent_runs(base: &str, target: &Target, text: &MessageText, report: &mut Report) {
    for (name, transport, total, concurrency) in [
        (
            "client send, 512 in flight, one WS",
            TransportMode::Ws,
            WS_TOTAL,
            WS_CONCURRENCY,
        ),
        (
            "client send, 64 in flight, HTTP",
            TransportMode::Http,
            HTTP_TOTAL,
            HTTP_CONCURRENCY,
        ),
    ] {
        let s = Arc::new(session(base, transport).await);
        let per_task = total / concurrency;
        let wall = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (s, target, text) = (Arc::clone(&s), target.clone(), text.clone());
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    s.send_text_with_id(&target, &text, &Session::new_client_message_id())
                        .await
                        .unwrap();
                    samples.push(t.elapsed());
                }
                samples
            }));
        }
        let mut samples = Vec::with_capacity(total);
        for t in tasks {
            samples.extend(t.await.unwrap());
        }
        report.latency(name, samples, wall.elapsed());
        s.close();
    }
}

/// Memory of idle connected sessions (the sandbox's memory is in the child).
async fn idle_sessions_run(base: &str) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = tiktok_dm_test_support::rss_kib(std::process::id());
    let mut sessions = Vec::with_capacity(IDLE_SESSIONS);
    for _ in 0..IDLE_SESSIONS {
        sessions.push(session(base, TransportMode::Ws).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = tiktok_dm_test_support::rss_kib(std::process::id());
    let per = (after.saturating_sub(before)) as f64 / IDLE_SESSIONS as f64;
    println!();
    println!(
        "idle connected sessions: {IDLE_SESSIONS}; RSS before {before} KiB, after {after} KiB; {per:.1} KiB per session"
    );
    drop(sessions);
}
