//! `LOAD_COMPARE=1`: one workload on three setups, in one run and against one
//! sandbox child: SQLite with one gateway, PostgreSQL with one gateway, and
//! PostgreSQL with two gateway children sharing one schema (and one API key).
//!
//! The workload: [`TOTAL`] sends, [`IN_FLIGHT`] at a time, round-robin over
//! [`SESSIONS`] per-request sessions (crowd accounts, each into its own
//! conversation, so each is a lane of its own), and on two gateways
//! alternating between them request by request. Phase (a) asks
//! `Prefer: respond-async` and then waits for an empty outbox; phase (b) has
//! every send answered after its delivery. On two gateways about half the
//! sends of (b) reach the gateway that does not hold their lane: it accepts
//! them, the holder's worker claims them from the outbox (within 200 ms when
//! idle) and delivers, and the waiting handler hears of the outcome from the
//! store's notification (`tiktok_dm_outcomes`), or failing that from its own
//! reads (`waiters::next_poll`).

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::children::{spawn_gateway_with, stop, store_for};
use crate::drive::{percentile, us};
use crate::handle::Gateway;

const TOTAL: usize = 40_000;
const IN_FLIGHT: usize = 256;
/// Per-request sessions (lanes) the sends go round.
const SESSIONS: usize = 16;
/// The gateways' lane ownership lease (the least the settings allow): a tick
/// is a third of it, so two gateways split the lanes within seconds.
const OWNER_LEASE_SECS: u64 = 3;
/// Answer-after-delivery sends of each session through each gateway per
/// warm-up.
const WARM_UP_SENDS: usize = 4;
/// The longest wait for an empty outbox after phase (a).
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// A session's name and the body of its sends.
type Sessions = Arc<Vec<(String, Value)>>;

/// The gateway children of one setup, and their handles.
struct Setup {
    name: &'static str,
    processes: Vec<Child>,
    gateways: Vec<Arc<Gateway>>,
}

/// One setup's figures.
struct Row {
    name: &'static str,
    /// Lanes each gateway owns once settled.
    lanes: Vec<String>,
    async_phase: AsyncPhase,
    after_delivery: AfterDelivery,
}

/// Phase (a): everything answered at once (202, or 200), then drained.
struct AsyncPhase {
    accepted_per_s: f64,
    /// From the phase's start until `/readyz` showed an empty outbox; `None`
    /// when it did not within [`DRAIN_LIMIT`].
    drained: Option<Duration>,
    cpu: Cpu,
}

/// Phase (b): every send answered after its delivery.
struct AfterDelivery {
    per_s: f64,
    p50: Duration,
    p99: Duration,
    /// Sends answered 202 (not delivered within `wait_for_delivery`).
    early: usize,
    /// On more than one gateway, p50 and p99 of the sends through the gateway
    /// holding their lane, and of the others (see [`by_holder`]).
    split: Option<[(Duration, Duration); 2]>,
    cpu: Cpu,
}

/// CPU µs per send: the gateways (summed), the sandbox, this driver, and
/// PostgreSQL (`None`: not readable).
type Cpu = [Option<f64>; 4];

/// Runs the three setups against the sandbox child `sandbox` (at
/// `sandbox_url`), prints the table, and stops the sandbox.
pub async fn run(dir: &Path, sandbox_url: &str, sandbox: &mut Child) {
    let sandbox_pid = sandbox.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let sessions = crowd_sessions();
    let mut rows = Vec::new();
    // `LOAD_COMPARE_ONLY=sqlite,pg1,pg2`: only the setups named.
    let only = std::env::var("LOAD_COMPARE_ONLY").ok();
    let wanted = |tag: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|t| t == tag))
    };
    if wanted("sqlite") {
        let sqlite = dir.join("compare.sqlite");
        let sqlite = sqlite.to_str().unwrap();
        let setup = start("SQLite, one gateway", sqlite, 1, sandbox_url, &http);
        rows.push(measure(setup, &sessions, sandbox_pid).await);
    }
    for (tag, name, count) in [
        ("pg1", "PostgreSQL, one gateway", 1),
        ("pg2", "PostgreSQL, two gateways", 2),
    ] {
        if !wanted(tag) {
            continue;
        }
        let (db, schema) = store_for(true, dir.join("unused")).await;
        let setup = start(name, &db, count, sandbox_url, &http);
        rows.push(measure(setup, &sessions, sandbox_pid).await);
        drop(schema);
    }
    stop(sandbox);
    print_table(&rows);
}

/// The first [`SESSIONS`] crowd accounts (`user-*`), each with a conversation
/// of its own, as `crowd_run` pairs them.
fn crowd_sessions() -> Sessions {
    let seed = tiktok_dm_sandbox::Seed::with_crowd(crate::CROWD).unwrap();
    let sessions = seed
        .accounts
        .iter()
        .filter(|a| a.name.starts_with("user-"))
        .zip(seed.conversations.iter().skip(2))
        .take(SESSIONS)
        .map(|(a, c)| {
            (
                a.session.clone(),
                json!({"conversation_id": c.conversation_id.as_str(), "conversation_short_id": c.conversation_short_id.to_string(), "text": "load"}),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(sessions.len(), SESSIONS);
    Arc::new(sessions)
}

/// Starts `count` gateway children on `database`; the later ones use the
/// first one's API key rather than creating their own.
fn start(
    name: &'static str,
    database: &str,
    count: usize,
    sandbox_url: &str,
    http: &reqwest::Client,
) -> Setup {
    let lease = OWNER_LEASE_SECS.to_string();
    let mut processes = Vec::new();
    let mut gateways: Vec<Arc<Gateway>> = Vec::new();
    for _ in 0..count {
        let mut env = vec![("LOAD_OWNER_LEASE_SECS", lease.as_str())];
        let first_key = gateways.first().map(|g| g.key.clone());
        if let Some(key) = &first_key {
            env.push(("LOAD_KEY", key));
        }
        let (process, gateway) =
            spawn_gateway_with(sandbox_url, database, http.clone(), Value::Null, &env);
        processes.push(process);
        gateways.push(gateway);
    }
    Setup {
        name,
        processes,
        gateways,
    }
}

/// Warms `setup` up (and lets two gateways split the lanes), runs both
/// phases, and stops its gateways.
async fn measure(mut setup: Setup, sessions: &Sessions, sandbox_pid: u32) -> Row {
    let lanes = settle(&setup.gateways, sessions).await;
    let pids: Vec<u32> = setup.processes.iter().map(Child::id).collect();
    let async_phase = async_phase(&setup.gateways, sessions, &pids, sandbox_pid).await;
    let after_delivery = after_delivery(&setup.gateways, sessions, &pids, sandbox_pid).await;
    for process in &mut setup.processes {
        stop(process);
    }
    Row {
        name: setup.name,
        lanes,
        async_phase,
        after_delivery,
    }
}

/// Each session sends [`WARM_UP_SENDS`] through each gateway (answered after
/// delivery), all sessions and gateways at once.
async fn warm_up(gateways: &[Arc<Gateway>], sessions: &Sessions) {
    let mut tasks = Vec::new();
    for g in gateways {
        for i in 0..SESSIONS {
            let (g, sessions) = (Arc::clone(g), Arc::clone(sessions));
            tasks.push(tokio::spawn(async move {
                let (session, body) = &sessions[i];
                for _ in 0..WARM_UP_SENDS {
                    g.send(session, body, false, &[200]).await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Warms up; with more than one gateway, waits two owner ticks and warms up
/// again until every lane is owned and the split held over a round (at most
/// ten rounds). Answers the lanes each gateway owns.
async fn settle(gateways: &[Arc<Gateway>], sessions: &Sessions) -> Vec<String> {
    warm_up(gateways, sessions).await;
    let tick = Duration::from_secs(OWNER_LEASE_SECS) / 3;
    let mut last: Option<Vec<String>> = None;
    for _ in 0..10 {
        if gateways.len() == 1 {
            break;
        }
        tokio::time::sleep(2 * tick).await;
        warm_up(gateways, sessions).await;
        let lanes = lanes_owned(gateways).await;
        let all: usize = lanes.iter().filter_map(|l| l.parse::<usize>().ok()).sum();
        if all == SESSIONS && last.as_ref() == Some(&lanes) {
            break;
        }
        last = Some(lanes);
    }
    // The gauge follows the heartbeat: read it a tick after the last sends.
    tokio::time::sleep(tick + Duration::from_millis(100)).await;
    lanes_owned(gateways).await
}

async fn lanes_owned(gateways: &[Arc<Gateway>]) -> Vec<String> {
    let mut lanes = Vec::new();
    for g in gateways {
        lanes.push(g.metric("tiktok_dm_lanes_owned").await);
    }
    lanes
}

/// [`TOTAL`] sends, [`IN_FLIGHT`] at a time (closed loop): send `i` goes as
/// session `i % SESSIONS`, and through gateway `(i + i / SESSIONS) % n`, so
/// that consecutive sends alternate between two gateways and so do a
/// session's. Answers each send's time, the wall time and how many sends were
/// answered 202.
async fn send_all(
    gateways: &[Arc<Gateway>],
    sessions: &Sessions,
    asynchronous: bool,
) -> (Vec<(usize, Duration)>, Duration, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (gateways, sessions) = (gateways.to_vec(), Arc::clone(sessions));
        let (next, early) = (Arc::clone(&next), Arc::clone(&early));
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    return samples;
                }
                let g = &gateways[gateway_of(i, gateways.len())];
                let (session, body) = &sessions[i % SESSIONS];
                let t = Instant::now();
                if g.send(session, body, asynchronous, &[200, 202]).await == 202 {
                    early.fetch_add(1, Ordering::Relaxed);
                }
                samples.push((i, t.elapsed()));
            }
        }));
    }
    let mut samples: Vec<(usize, Duration)> = Vec::with_capacity(TOTAL);
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    assert_eq!(samples.len(), TOTAL);
    (samples, wall.elapsed(), early.load(Ordering::Relaxed))
}

/// The gateway send `i` goes through, of `n`.
fn gateway_of(i: usize, n: usize) -> usize {
    (i + i / SESSIONS) % n
}

/// Phase (a): accepted at once, then until `/readyz` of the first gateway
/// (the store's count, shared by all) shows an empty outbox.
async fn async_phase(
    gateways: &[Arc<Gateway>],
    sessions: &Sessions,
    pids: &[u32],
    sandbox_pid: u32,
) -> AsyncPhase {
    let before = CpuMark::take(pids, sandbox_pid);
    let started = Instant::now();
    let (_, wall, _) = send_all(gateways, sessions, true).await;
    let mut drained = None;
    while started.elapsed() < DRAIN_LIMIT {
        if gateways[0].depth().await == 0 {
            drained = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    AsyncPhase {
        accepted_per_s: TOTAL as f64 / wall.as_secs_f64(),
        drained,
        cpu: before.per_send(&CpuMark::take(pids, sandbox_pid)),
    }
}

/// Phase (b): every send answered after its delivery.
async fn after_delivery(
    gateways: &[Arc<Gateway>],
    sessions: &Sessions,
    pids: &[u32],
    sandbox_pid: u32,
) -> AfterDelivery {
    let before = CpuMark::take(pids, sandbox_pid);
    let (samples, wall, early) = send_all(gateways, sessions, false).await;
    let cpu = before.per_send(&CpuMark::take(pids, sandbox_pid));
    let split = (gateways.len() > 1).then(|| {
        by_holder(&samples, gateways.len()).map(|mut s| {
            s.sort();
            (percentile(&s, 0.50), percentile(&s, 0.99))
        })
    });
    let mut samples: Vec<Duration> = samples.into_iter().map(|(_, d)| d).collect();
    samples.sort();
    AfterDelivery {
        per_s: TOTAL as f64 / wall.as_secs_f64(),
        p50: percentile(&samples, 0.50),
        p99: percentile(&samples, 0.99),
        early,
        split,
        cpu,
    }
}

/// The times of the sends through the gateway holding their lane, and of the
/// others. Which gateway holds a lane is inferred: of a session's sends, those
/// through the gateway that answered them faster at the median.
fn by_holder(samples: &[(usize, Duration)], gateways: usize) -> [Vec<Duration>; 2] {
    let mut groups = vec![vec![Vec::new(); gateways]; SESSIONS];
    for &(i, d) in samples {
        groups[i % SESSIONS][gateway_of(i, gateways)].push(d);
    }
    let mut split = [Vec::new(), Vec::new()];
    for mut session in groups {
        for g in &mut session {
            g.sort();
        }
        let holder = (0..gateways)
            .filter(|&g| !session[g].is_empty())
            .min_by_key(|&g| percentile(&session[g], 0.50))
            .unwrap();
        for (g, times) in session.into_iter().enumerate() {
            split[usize::from(g != holder)].extend(times);
        }
    }
    split
}

/// CPU time so far of the gateways (summed), the sandbox, this process and
/// PostgreSQL.
struct CpuMark([Option<Duration>; 4]);

impl CpuMark {
    fn take(gateway_pids: &[u32], sandbox_pid: u32) -> Self {
        Self([
            Some(crate::cpu::processes(gateway_pids)),
            Some(crate::cpu::processes(&[sandbox_pid])),
            Some(crate::cpu::processes(&[std::process::id()])),
            crate::cpu::postgres(),
        ])
    }

    /// µs per send of [`TOTAL`] sends from this mark to `after`.
    fn per_send(&self, after: &Self) -> Cpu {
        let mut cpu = [None; 4];
        for (i, c) in cpu.iter_mut().enumerate() {
            if let (Some(b), Some(a)) = (self.0[i], after.0[i]) {
                *c = Some(us(a.saturating_sub(b)) / TOTAL as f64);
            }
        }
        cpu
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "compare: {TOTAL} sends per phase, {IN_FLIGHT} in flight, round-robin over {SESSIONS} per-request sessions (user-1 … user-{SESSIONS}); owner lease {OWNER_LEASE_SECS} s"
    );
    println!(
        "| setup | lanes owned | (a) accepted per s | (a) accepted and delivered per s | (b) answer after delivery per s | (b) p50 / p99 ms | CPU µs per send (a / b): gateways | sandbox | driver | PostgreSQL |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let a = &row.async_phase;
        let b = &row.after_delivery;
        let delivered = a.drained.map_or_else(
            || format!("not empty after {} s", DRAIN_LIMIT.as_secs()),
            |d| format!("{:.0}", TOTAL as f64 / d.as_secs_f64()),
        );
        let cpu: Vec<String> = (0..4).map(|i| both(a.cpu[i], b.cpu[i])).collect();
        println!(
            "| {} | {} | {:.0} | {delivered} | {:.0} | {:.0} / {:.0} | {} |",
            row.name,
            row.lanes.join(" + "),
            a.accepted_per_s,
            b.per_s,
            us(b.p50) / 1e3,
            us(b.p99) / 1e3,
            cpu.join(" | ")
        );
    }
    println!();
    for row in rows.iter().filter(|r| r.after_delivery.early > 0) {
        println!(
            "{}: {} sends of (b) were answered 202 (not delivered within wait_for_delivery)",
            row.name, row.after_delivery.early
        );
    }
    for row in rows {
        if let Some([(p50, p99), (q50, q99)]) = row.after_delivery.split {
            println!(
                "{} (b): through the gateway holding the lane p50 {:.0} / p99 {:.0} ms, through the other p50 {:.0} / p99 {:.0} ms (the holder taken to be the gateway answering the session's sends faster)",
                row.name,
                us(p50) / 1e3,
                us(p99) / 1e3,
                us(q50) / 1e3,
                us(q99) / 1e3
            );
        }
    }
    println!(
        "(a)'s end is when /readyz first showed an empty outbox (its count is up to 1 s old). \
         PostgreSQL CPU: every process named postgres on this machine, ended backends included \
         (clock ticks assumed 100 per second), so other clients' queries count too; on the SQLite \
         row it is only theirs."
    );
}

/// A figure of both phases, "a / b", or "n/a".
fn both(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
        _ => "n/a".to_owned(),
    }
}
