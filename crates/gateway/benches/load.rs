//! Gateway load harness (not a test). Run with
//! `cargo bench -p tiktok-dm-gateway --bench load`; results go in
//! docs/benchmarks.md. Three processes, all this binary: the sandbox (with 1,000
//! extra accounts), the gateway (a fresh SQLite file, WAL, synchronous=FULL; or
//! with `LOAD_STORE=postgres`, a fresh schema on the PostgreSQL server the store
//! tests use), and
//! this one driving both over loopback HTTP, with a fixed number of sends in
//! flight (closed loop) and with sends arriving at a fixed rate (open loop).
//! `LOAD_PIN=1` puts the gateway alone on the last core and the sandbox and the
//! driver on the others (`taskset`). `LOAD_BURSTS_ONLY=1` runs only the two
//! bursts (throughput and CPU per send). The gateway's memory is its own
//! process's RSS. Every loop is bounded; the children exit when stdin closes.
//!
//! `LOAD_COMPARE=1` runs instead one workload on three setups, against the
//! same sandbox child, and prints one table: SQLite with one gateway (a fresh
//! file), PostgreSQL with one gateway (a fresh schema), and PostgreSQL with
//! two gateway children on one fresh schema (the second uses the first's API
//! key; both hold lanes for 3 s, so they split them within seconds, and the
//! run waits for the split to settle). The workload: 40,000 sends, 256 in
//! flight, round-robin over 16 per-request sessions (crowd accounts, each
//! into its own conversation) and, on two gateways, alternating between them
//! request by request; first with `Prefer: respond-async` until the outbox is
//! empty, then answered after delivery. CPU per send is given for the
//! gateways, the sandbox, the driver and the PostgreSQL server (every
//! `postgres` process on the machine; see `load/compare.rs`).
//! `LOAD_COMPARE_ONLY` names the setups to run (`sqlite`, `pg1`, `pg2`,
//! comma-separated); unset, all three.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "load/children.rs"]
mod children;
#[path = "load/compare.rs"]
mod compare;
#[path = "load/cpu.rs"]
mod cpu;
#[path = "load/drive.rs"]
mod drive;
#[path = "load/handle.rs"]
mod handle;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target, TransportMode};
use tiktok_dm_proto::content::MessageText;

use children::{spawn_child, spawn_gateway, stop, store_for};
use drive::{Stats, drive, paced, percentile, stats, us};
use handle::Gateway;

/// The allocator `tiktok-dm` uses, so the gateway child measures what users run.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CROWD: u32 = 1_000;
/// The sandbox session every latency and burst send uses.
const ALICE: &str = "sandbox-session-alice";
const SEQUENTIAL: usize = 10_000;
const MODERATE_TOTAL: usize = 40_000;
const MODERATE_CONCURRENCY: usize = 8;
/// Open-loop moderate load: sends arrive at these rates (Poisson), whatever
/// the answers do, for `PACED_SECONDS` each.
const PACED_RATES: [f64; 2] = [1_000.0, 4_000.0];
const PACED_SECONDS: f64 = 5.0;
const BURST_TOTAL: usize = 40_000;
const BURST_CONCURRENCY: usize = 256;

fn main() {
    match std::env::var("LOAD_CHILD").as_deref() {
        Ok("sandbox") => return children::sandbox_child(),
        Ok("gateway") => return children::gateway_child(),
        _ => {}
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(parent());
}

/// How a latency run sends: directly with the client, or through the gateway
/// (which answers 200 once the message is delivered).
#[derive(Clone)]
enum Via {
    Direct(Arc<Session>, Target),
    Gateway(Arc<Gateway>),
}

impl Via {
    fn name(&self) -> &'static str {
        match self {
            Via::Direct(..) => "client directly",
            Via::Gateway(_) => "through the gateway",
        }
    }

    fn note(&self) -> &'static str {
        match self {
            Via::Direct(..) => "",
            Via::Gateway(_) => ", answer after delivery",
        }
    }

    async fn send(&self) {
        match self {
            Via::Direct(session, target) => {
                let text = MessageText::parse("load").unwrap();
                session
                    .send_text_with_id(target, &text, &Session::new_client_message_id())
                    .await
                    .unwrap();
            }
            Via::Gateway(g) => {
                g.send(ALICE, &g.body, false, &[200]).await;
            }
        }
    }
}

/// The disk under the database: 2,000 writes of 4 KiB, each followed by
/// `fdatasync`, as a durable commit ends. The gateway's answer waits for one, so
/// its latency bounds the gateway's; results from machines with different
/// disks are comparable only next to it.
fn disk_sync_latency(dir: &std::path::Path) {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("fsync-probe");
    let file = std::fs::File::create(&path).unwrap();
    let page = [0x5a_u8; 4096];
    let mut samples = Vec::with_capacity(2000);
    for i in 0..2000u64 {
        file.write_all_at(&page, (i % 256) * 4096).unwrap();
        let start = Instant::now();
        file.sync_data().unwrap();
        samples.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(path).unwrap();
    samples.sort();
    let pct = |p: f64| us(percentile(&samples, p));
    println!(
        "disk under the database: fdatasync after a 4 KiB write p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs ({} samples)",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples.len()
    );
}

async fn parent() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // `LOAD_STORE=postgres`: the gateway on PostgreSQL (a fresh schema on the
    // server the store tests use) instead of a SQLite file.
    let on_postgres = std::env::var("LOAD_STORE").as_deref() == Ok("postgres");
    if !on_postgres {
        disk_sync_latency(dir.path());
    }
    let (mut sandbox, addr) = spawn_child("sandbox", &[]);
    let sandbox_url = format!("http://{addr}");
    if std::env::var("LOAD_COMPARE").as_deref() == Ok("1") {
        return compare::run(dir.path(), &sandbox_url, &mut sandbox).await;
    }
    let (db, _schema) = store_for(on_postgres, dir.path().join("load.sqlite")).await;
    let seed = tiktok_dm_sandbox::Seed::with_crowd(CROWD).unwrap();
    let c = &seed.conversations[0];
    let target = Target::parse(
        c.conversation_id.as_str(),
        &c.conversation_short_id.to_string(),
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let body = json!({"conversation_id": c.conversation_id.as_str(), "conversation_short_id": c.conversation_short_id.to_string(), "text": "load"});
    let (mut gateway_process, gw) = spawn_gateway(&sandbox_url, &db, http, body);
    let direct = connect_direct(&sandbox_url).await;
    warm_up(&direct, &target, &gw).await;
    let gateway_pid = gateway_process.id();
    // `LOAD_PIN=1`: the gateway on the last core, the sandbox and this driver
    // on the others (with `taskset`), to see what sharing cores costs.
    if std::env::var("LOAD_PIN").as_deref() == Ok("1") {
        pin_cores(gateway_pid, sandbox.id());
    }
    let rss_start = tiktok_dm_test_support::rss_kib(gateway_pid);

    println!(
        "store: {}",
        if on_postgres { "PostgreSQL" } else { "SQLite" }
    );
    println!("| run | sends | per s | p50 µs | p90 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    let vias = [
        Via::Direct(Arc::clone(&direct), target.clone()),
        Via::Gateway(Arc::clone(&gw)),
    ];
    let bursts_only = std::env::var("LOAD_BURSTS_ONLY").as_deref() == Ok("1");
    let mut pairs = Vec::new();
    if !bursts_only {
        pairs = closed_loop_runs(&vias).await;
        // (Open-loop runs are skipped on PostgreSQL, which accepts fewer
        // sends than these rates.)
        let rates: &[f64] = if on_postgres { &[] } else { &PACED_RATES };
        pairs.extend(open_loop_runs(&vias, rates).await);
    }
    let bursts = burst_runs(&gw, [gateway_pid, sandbox.id(), std::process::id()]).await;
    let rss_after_load = tiktok_dm_test_support::rss_kib(gateway_pid);
    if bursts_only {
        print_bursts(&bursts);
        for child in [&mut gateway_process, &mut sandbox] {
            stop(child);
        }
        return;
    }

    // 1,000 accounts, each sends once and stays connected (idle), in a fresh
    // gateway process, so the figure is not the allocator's memory kept from
    // the bursts above.
    stop(&mut gateway_process);
    let (db2, _schema2) = store_for(on_postgres, dir.path().join("crowd.sqlite")).await;
    let (mut gateway_process, gw) =
        spawn_gateway(&sandbox_url, &db2, gw.http.clone(), gw.body.clone());
    let crowd = crowd_run(&gw, gateway_process.id(), &seed).await;

    print_summary(&pairs, &bursts, [rss_start, rss_after_load], &crowd);
    for child in [&mut gateway_process, &mut sandbox] {
        stop(child);
    }
}

/// A client session of alice over the WebSocket, for the direct sends.
async fn connect_direct(sandbox_url: &str) -> Arc<Session> {
    let config = Config::builder(Credentials::parse(ALICE).unwrap())
        .endpoints(Endpoints::sandbox(sandbox_url).unwrap())
        .transport(TransportMode::Ws)
        .build()
        .unwrap();
    Arc::new(Session::connect(config).await.unwrap())
}

/// Warms up both paths (connections, pools, the gateway's session).
async fn warm_up(direct: &Session, target: &Target, gw: &Gateway) {
    let text = MessageText::parse("load").unwrap();
    for _ in 0..200 {
        direct
            .send_text_with_id(target, &text, &Session::new_client_message_id())
            .await
            .unwrap();
        gw.send(ALICE, &gw.body, false, &[200]).await;
    }
}

/// Puts the gateway alone on the last core, and the sandbox and this driver on
/// the others.
fn pin_cores(gateway_pid: u32, sandbox_pid: u32) {
    let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let others = if last == 0 {
        "0".to_owned()
    } else {
        format!("0-{}", last - 1)
    };
    for (pid, cores) in [
        (gateway_pid, last.to_string()),
        (sandbox_pid, others.clone()),
        (std::process::id(), others),
    ] {
        let pinned = Command::new("taskset")
            .args(["-a", "-p", "-c", &cores, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(pinned.success(), "taskset failed");
    }
    println!("pinned: the gateway alone on core {last}");
}

/// A load's name with the direct and the gateway figures at that load.
type Pair = (String, Vec<Stats>);

/// Latency: the same sends made directly and through the gateway (which waits
/// for delivery before answering 200), one at a time and at moderate load.
async fn closed_loop_runs(vias: &[Via]) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (total, concurrency) in [(SEQUENTIAL, 1), (MODERATE_TOTAL, MODERATE_CONCURRENCY)] {
        let mut pair = Vec::new();
        for via in vias {
            let v = via.clone();
            let (samples, wall) = drive(total, concurrency, move || {
                let v = v.clone();
                async move { v.send().await }
            })
            .await;
            let name = format!("{}, {concurrency} in flight{}", via.name(), via.note());
            pair.push(stats(&name, samples, wall));
        }
        pairs.push((format!("{concurrency} in flight"), pair));
    }
    pairs
}

/// Latency at a steady arrival rate (open loop): closed-loop senders that
/// wait for each answer before the next send arrive in lockstep convoys,
/// which a steady stream of independent automations does not.
async fn open_loop_runs(vias: &[Via], rates: &[f64]) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for &rate in rates {
        let mut pair = Vec::new();
        for via in vias {
            let v = via.clone();
            let samples = paced(rate, PACED_SECONDS, move || {
                let v = v.clone();
                async move { v.send().await }
            })
            .await;
            let name = format!("{}, {rate:.0}/s arriving{}", via.name(), via.note());
            pair.push(stats(
                &name,
                samples,
                Duration::from_secs_f64(PACED_SECONDS),
            ));
        }
        pairs.push((format!("{rate:.0}/s arriving"), pair));
    }
    pairs
}

/// What the two bursts measured.
struct Bursts {
    /// Answered after delivery.
    after_delivery: Stats,
    /// Answered 202 at once.
    accepted: Stats,
    /// From the second burst's start until the outbox was empty.
    drained: Duration,
    /// CPU µs per send of the gateway, the sandbox and this driver.
    cpu_per_send: [f64; 3],
    /// CPU µs per send of the gateway's store writer thread.
    writer_per_send: f64,
}

/// Throughput of many clients: answers after delivery, then accepted at once
/// (202) and drained by the worker; `pids` are the gateway's, the sandbox's
/// and this process's, whose CPU time is shared out per send.
async fn burst_runs(gw: &Arc<Gateway>, pids: [u32; 3]) -> Bursts {
    let gateway_pid = pids[0];
    let cpu_before = pids.map(tiktok_dm_test_support::cpu_time);
    let writer_before = tiktok_dm_test_support::thread_cpu_time(gateway_pid, "store-writer");
    let g = Arc::clone(gw);
    let (samples, wall) = drive(BURST_TOTAL, BURST_CONCURRENCY, move || {
        let g = Arc::clone(&g);
        async move {
            g.send(ALICE, &g.body, false, &[200]).await;
        }
    })
    .await;
    let after_delivery = stats(
        &format!("through the gateway, {BURST_CONCURRENCY} in flight, answer after delivery"),
        samples,
        wall,
    );
    let g = Arc::clone(gw);
    let started = Instant::now();
    let (samples, wall) = drive(BURST_TOTAL, BURST_CONCURRENCY, move || {
        let g = Arc::clone(&g);
        async move {
            // 200 when the worker was quicker than the answer.
            g.send(ALICE, &g.body, true, &[200, 202]).await;
        }
    })
    .await;
    let accepted = stats(
        &format!("through the gateway, {BURST_CONCURRENCY} in flight, Prefer: respond-async"),
        samples,
        wall,
    );
    for _ in 0..6_000 {
        if gw.depth().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = started.elapsed();
    let cpu_per_send = {
        let after = pids.map(tiktok_dm_test_support::cpu_time);
        let sends = (2 * BURST_TOTAL) as f64;
        [0, 1, 2].map(|i| us(after[i] - cpu_before[i]) / sends)
    };
    let writer_per_send =
        us(tiktok_dm_test_support::thread_cpu_time(gateway_pid, "store-writer") - writer_before)
            / (2 * BURST_TOTAL) as f64;
    Bursts {
        after_delivery,
        accepted,
        drained,
        cpu_per_send,
        writer_per_send,
    }
}

/// The idle crowd's figures: the gateway's RSS before and after, and how many
/// sessions it reported connected.
struct Crowd {
    before: u64,
    after: u64,
    connected: String,
}

/// Every crowd account (`user-*`) sends once through `gw`, a fresh gateway
/// whose process is `gateway_pid`, into a conversation of its own, and stays
/// connected.
async fn crowd_run(gw: &Arc<Gateway>, gateway_pid: u32, seed: &tiktok_dm_sandbox::Seed) -> Crowd {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = tiktok_dm_test_support::rss_kib(gateway_pid);
    let crowd: Vec<(String, Value)> = seed
        .accounts
        .iter()
        .filter(|a| a.name.starts_with("user-"))
        .zip(seed.conversations.iter().skip(2))
        .map(|(a, c)| {
            (
                a.session.clone(),
                json!({"conversation_id": c.conversation_id.as_str(), "conversation_short_id": c.conversation_short_id.to_string(), "text": "hello from the crowd"}),
            )
        })
        .collect();
    let crowd = Arc::new(crowd);
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let (g, crowd) = (Arc::clone(gw), Arc::clone(&crowd));
        tasks.push(tokio::spawn(async move {
            for (session, body) in crowd.iter().skip(worker).step_by(32) {
                g.send(session, body, false, &[200]).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = gw.metric("tiktok_dm_sessions_connected").await;
    let after = tiktok_dm_test_support::rss_kib(gateway_pid);
    Crowd {
        before,
        after,
        connected,
    }
}

/// The figures derived from the runs: the gateway's overhead, throughput, CPU
/// per send and memory. `rss` is the first gateway's after warm-up and after
/// the bursts.
fn print_summary(pairs: &[Pair], bursts: &Bursts, rss: [u64; 2], crowd: &Crowd) {
    let [rss_start, rss_after_load] = rss;
    println!();
    for (load, pair) in pairs {
        let (d, g) = (&pair[0], &pair[1]);
        println!(
            "gateway overhead at {load}: p50 +{:.0} µs, p99 +{:.0} µs",
            us(g.p50) - us(d.p50),
            us(g.p99) - us(d.p99)
        );
    }
    print_bursts(bursts);
    println!(
        "gateway RSS: {rss_start} KiB after warm-up, {rss_after_load} KiB after the bursts; a fresh gateway: {} KiB at start, {} KiB with {CROWD} accounts connected and idle (sessions_connected {}), {:.1} KiB per account",
        crowd.before,
        crowd.after,
        crowd.connected,
        (crowd.after.saturating_sub(crowd.before)) as f64 / f64::from(CROWD)
    );
}

/// The bursts' throughput and CPU per send.
fn print_bursts(bursts: &Bursts) {
    let Bursts {
        after_delivery,
        accepted,
        drained,
        cpu_per_send,
        writer_per_send,
    } = bursts;
    println!(
        "answer-after-delivery throughput: {:.0}/s; accepted (202) {:.0}/s; {BURST_TOTAL} accepted and delivered in {:.2} s = {:.0}/s",
        after_delivery.rate,
        accepted.rate,
        drained.as_secs_f64(),
        BURST_TOTAL as f64 / drained.as_secs_f64()
    );
    println!(
        "CPU per send over both bursts: gateway {:.0} µs (its store writer thread {writer_per_send:.0} µs), sandbox {:.0} µs, driver {:.0} µs",
        cpu_per_send[0], cpu_per_send[1], cpu_per_send[2]
    );
    println!(
        "the gateway alone, if it had the {} cores to itself: at most {:.0} sends/s by CPU, {:.0}/s by its serial writer thread",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::thread::available_parallelism().map_or(1, |n| n.get()) as f64 * 1e6 / cpu_per_send[0],
        1e6 / writer_per_send
    );
}
