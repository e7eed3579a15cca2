//! Several `tiktok-dm serve` processes sharing one PostgreSQL database (issue
//! 19), against one sandbox: one key's quota across gateways; an account's
//! pacing and single TikTok session across gateways, when its holder stops
//! and when its lane moves to a joining gateway; a gateway killed mid-burst,
//! whose lanes the other takes over; a gateway started later getting its
//! share of the accounts, a few at a time.
//!
//! Leases are short (lanes 3 s, claims 2 s). A failing test prints each
//! gateway's log; `TDM_SCALE_OUT_LOG` sets its level (`TIKTOK_DM_LOG`,
//! `warn` by default).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tiktok_dm_gateway::now_ms;
use tiktok_dm_gateway::ownership::{REBALANCE_STEP, target};
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_sandbox::{Conversation, Seed};
use tiktok_dm_test_support::postgres::PgSchema;

use crate::{args, json, run_with_env};

/// 32 bytes, base64: the master key every gateway of a database shares.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The admin key of every gateway here.
const ADMIN_KEY: &str = "scale-out-admin-key-0123456789";
/// Lanes a gateway holds without renewing them (the least allowed): a dead
/// gateway's lanes move after this, and ownership ticks every second.
const OWNER_LEASE_SECS: u64 = 3;

/// The current time on the database's clock, in Unix ms, as SQL.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A `tiktok-dm serve` on the test's database; killed when dropped, its log
/// (standard error) shown when the test is failing.
struct Gateway {
    child: Child,
    url: String,
    id: String,
    log: PathBuf,
}

impl Gateway {
    /// Starts a gateway on `db`, sending to the sandbox at `sandbox_url`, with
    /// short leases, listening off, and `extra` variables; waits until it
    /// serves.
    async fn start(db: &str, sandbox_url: &str, extra: &[(&str, &str)], log: PathBuf) -> Self {
        use std::io::{BufRead as _, BufReader};
        let owner_lease = OWNER_LEASE_SECS.to_string();
        let level = std::env::var("TDM_SCALE_OUT_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = crate::command()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                db,
                "--sandbox-url",
                sandbox_url,
            ])
            .env("TIKTOK_DM_MASTER_KEY", MASTER_KEY)
            .env("TIKTOK_DM_ADMIN_KEY", ADMIN_KEY)
            .env("TIKTOK_DM_OWNER_LEASE_SECS", &owner_lease)
            .env("TIKTOK_DM_LEASE_SECS", "2")
            .env("TIKTOK_DM_LISTEN_ACCOUNTS", "false")
            .env("TIKTOK_DM_LOG", level)
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "not a JSON ready line ({e}): {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let url = ready["url"].as_str().unwrap().to_owned();
        let mut gateway = Self {
            child,
            url,
            id: String::new(),
            log,
        };
        gateway.id = gateway.view(&reqwest::Client::new()).await["gateway"]
            .as_str()
            .unwrap()
            .to_owned();
        gateway
    }

    /// `GET /v1/admin/gateways` on this gateway.
    async fn view(&self, http: &reqwest::Client) -> serde_json::Value {
        let response = http
            .get(format!("{}/v1/admin/gateways", self.url))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let view: serde_json::Value = response.json().await.unwrap();
        assert_eq!(view["success"], true, "{view}");
        view
    }

    /// Stops it with SIGTERM (it gives its lanes up on the way out) and waits
    /// until it has exited.
    async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "gateway {} does not stop",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it with SIGKILL and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let from = log.len().saturating_sub(8_000);
            let from = (from..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(0);
            let tail = &log[from..];
            eprintln!("--- log of gateway {} ({}):\n{tail}", self.id, self.url);
        }
    }
}

/// Waits until each of `gateways` has seen all of them alive.
async fn until_all_see(http: &reqwest::Client, gateways: &[&Gateway]) {
    let ids: BTreeSet<&str> = gateways.iter().map(|g| g.id.as_str()).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    'poll: loop {
        assert!(
            Instant::now() < deadline,
            "the gateways do not all see each other"
        );
        for g in gateways {
            let view = g.view(http).await;
            let seen: BTreeSet<&str> = view["gateways"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["id"].as_str().unwrap())
                .collect();
            if seen != ids {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'poll;
            }
        }
        return;
    }
}

/// `keys create --name NAME [EXTRA] --json` on `db`: the key.
async fn create_key(db: &str, name: &str, extra: &[&str]) -> String {
    let mut list = vec!["keys", "create", "--name", name, "--json"];
    list.extend_from_slice(extra);
    list.extend_from_slice(&["--database", db]);
    let created = run_with_env(args(&list), None, &[("TIKTOK_DM_MASTER_KEY", MASTER_KEY)]).await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    json(&created)["key"].as_str().unwrap().to_owned()
}

/// `accounts add --name NAME --session - --database DB`, the session on
/// standard input.
async fn add_account(db: &str, name: &str, session: &str) {
    let added = run_with_env(
        args(&[
            "accounts",
            "add",
            "--name",
            name,
            "--session",
            "-",
            "--database",
            db,
        ]),
        Some(session.to_owned()),
        &[("TIKTOK_DM_MASTER_KEY", MASTER_KEY)],
    )
    .await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
}

/// The body of a text send to conversation `c`.
fn text_to(c: &Conversation, text: &str) -> serde_json::Value {
    serde_json::json!({
        "conversation_id": c.conversation_id.to_string(),
        "conversation_short_id": c.conversation_short_id.get(),
        "text": text,
    })
}

/// POSTs a send with `Prefer: respond-async` (and `X-TikTok-Session` when
/// `session` is given): the status and the answer, or the transport error
/// (the gateway is gone).
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    session: Option<&str>,
    body: &serde_json::Value,
) -> reqwest::Result<(u16, serde_json::Value)> {
    let mut request = http
        .post(format!("{url}/v1/messages"))
        .bearer_auth(key)
        .header("prefer", "respond-async")
        .json(body);
    if let Some(session) = session {
        request = request.header("x-tiktok-session", session);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// The client message id of an accepted send's first message.
fn client_message_id(answer: &serde_json::Value) -> String {
    answer["messages"][0]["client_message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no client message id: {answer}"))
        .to_owned()
}

/// Waits until `sql`'s first row reads `want`, polling; panics after `within`.
async fn until_query(schema: &PgSchema, sql: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = schema.query_text(sql).await;
        if got.first().map(String::as_str) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {got:?}, not {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each live lease's lane and owner, as the database has them now.
async fn live_leases(schema: &PgSchema) -> BTreeMap<String, String> {
    schema
        .query_text(&format!(
            "SELECT lane || ' ' || owner FROM lane_leases WHERE owner IS NOT NULL AND expires_at > {DB_NOW_MS}"
        ))
        .await
        .iter()
        .map(|row| {
            let (lane, owner) = row.rsplit_once(' ').unwrap();
            (lane.to_owned(), owner.to_owned())
        })
        .collect()
}

/// The seeded conversation `uid` is in (the crowd's users each have one).
fn conversation_of(seed: &Seed, uid: Uid) -> Conversation {
    seed.conversations
        .iter()
        .find(|c| {
            c.conversation_id
                .participants()
                .is_some_and(|(x, y)| x == uid || y == uid)
        })
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_accept_exactly_a_keys_daily_limit_between_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = schema.url.as_str();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(db, "quota", &["--daily-limit", "50"]).await;
    let a = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("a.log")).await;
    let b = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("b.log")).await;

    let http = reqwest::Client::new();
    let c = sandbox.handle.seed().conversations[0].clone();
    let mut posts = Vec::new();
    for i in 0..200 {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let body = text_to(&c, &format!("quota {i}"));
        posts.push(tokio::spawn(async move {
            post(&http, &url, &key, Some("sandbox-session-alice"), &body)
                .await
                .unwrap()
        }));
    }
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for p in posts {
        match p.await.unwrap() {
            (200 | 202, answer) => {
                assert!(accepted.insert(client_message_id(&answer)));
            }
            (429, answer) if answer["error"]["code"] == "quota_exceeded" => refused += 1,
            (status, answer) => panic!("unexpected answer {status}: {answer}"),
        }
    }
    assert_eq!((accepted.len(), refused), (50, 150));

    until_query(
        &schema,
        "SELECT count(*) FROM outbox WHERE state = 'sent'",
        "50",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        schema.query_text("SELECT count(*) FROM outbox").await,
        ["50"]
    );
    let received: Vec<String> = sandbox
        .handle
        .messages()
        .into_iter()
        .map(|m| m.client_message_id)
        .collect();
    assert_eq!(received.len(), 50, "each accepted message stored once");
    assert_eq!(received.into_iter().collect::<BTreeSet<_>>(), accepted);
}

/// Pacing for the paced tests: 1,000 ms between one account's sends, no
/// jitter.
const PACED: [(&str, &str); 2] = [
    ("TIKTOK_DM_PACING_MIN_INTERVAL_MS", "1000"),
    ("TIKTOK_DM_PACING_JITTER_MS", "0"),
];
/// How many sends the paced tests make.
const PACED_SENDS: usize = 8;

/// A database with alice stored as account `paced` and a key sending as it,
/// and a sandbox.
struct PacedSetup {
    schema: PgSchema,
    sandbox: tiktok_dm_test_support::TestSandbox,
    alice: tiktok_dm_sandbox::Account,
    key: String,
    dir: tempfile::TempDir,
}

impl PacedSetup {
    async fn new() -> Option<Self> {
        let schema = PgSchema::create().await?;
        let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
        let alice = sandbox.handle.account("alice").unwrap().clone();
        add_account(&schema.url, "paced", &alice.session).await;
        let key = create_key(&schema.url, "paced", &["--account", "paced"]).await;
        Some(Self {
            schema,
            sandbox,
            alice,
            key,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn gateway(&self, log: &str) -> Gateway {
        Gateway::start(
            &self.schema.url,
            &self.sandbox.base_url(),
            &PACED,
            self.dir.path().join(log),
        )
        .await
    }

    /// Starts sampling how many sockets alice has open (every 20 ms) until
    /// the answer is awaited: the most seen.
    fn sample_sockets(&self) -> SocketSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (handle, uid, stopping) = (
            self.sandbox.handle.clone(),
            self.alice.uid,
            Arc::clone(&stop),
        );
        let task = tokio::spawn(async move {
            let (mut most, mut first_extra, mut last_extra) = (0, None, None);
            while !stopping.load(Ordering::Relaxed) {
                let open = handle.open_sockets(uid);
                most = most.max(open);
                if open > 1 {
                    first_extra.get_or_insert_with(Instant::now);
                    last_extra = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let extra = first_extra
                .zip(last_extra)
                .map_or(Duration::ZERO, |(first, last)| last - first);
            (most, extra)
        });
        SocketSampler { stop, task }
    }

    /// Sends text `n` to alice and bob's conversation through `url`: its
    /// client message id.
    async fn send(&self, http: &reqwest::Client, url: &str, n: usize) -> String {
        let c = &self.sandbox.handle.seed().conversations[0];
        let body = text_to(c, &format!("paced {n}"));
        let (status, answer) = post(http, url, &self.key, None, &body).await.unwrap();
        assert!(matches!(status, 200 | 202), "{status}: {answer}");
        client_message_id(&answer)
    }

    /// The messages alice sent so far.
    fn received(&self) -> Vec<tiktok_dm_sandbox::ReceivedMessage> {
        self.sandbox
            .handle
            .messages()
            .into_iter()
            .filter(|m| m.sender_uid == self.alice.uid.get())
            .collect()
    }

    /// Waits until alice sent `n` messages.
    async fn until_received(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received().len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} paced messages sent",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every message of `sent` is in, then checks that they
    /// are what was sent and that no two went closer than the pacing.
    async fn check_paced(&self, sent: &BTreeSet<String>) {
        self.until_received(sent.len()).await;
        let received = self.received();
        let ids: Vec<String> = received
            .iter()
            .map(|m| m.client_message_id.clone())
            .collect();
        assert_eq!(ids.len(), sent.len(), "each stored once");
        assert_eq!(&ids.into_iter().collect::<BTreeSet<_>>(), sent);
        let mut times: Vec<i64> = received.iter().map(|m| m.received_at_ms).collect();
        times.sort_unstable();
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        eprintln!("paced gaps: {gaps:?} ms");
        // The slots are exactly 1,000 ms apart; the sandbox stamps arrivals,
        // which each send's own latency moves by a few ms.
        assert!(
            gaps.iter().all(|&g| g >= 1_000 - 50),
            "sends of one account closer than its pacing of 1,000 ms: gaps {gaps:?} ms"
        );
    }
}

/// Samples how many sockets an account has open.
struct SocketSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Duration)>,
}

impl SocketSampler {
    /// Stops sampling; checks that one socket was open at most, and at
    /// some point.
    async fn assert_one_at_most(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (most, extra) = self.task.await.unwrap();
        assert_eq!(
            most, 1,
            "one session for the account at any time (more than one open for {extra:?})"
        );
    }
}

/// A paced account's sends, made through both gateways, are spaced by the
/// pacing whichever gateway sends them: also across a handover, when its
/// holder stops in the middle and the other gateway takes its lane (the
/// slots are in the database, not in a process). One TikTok session for the
/// account at any time.
#[tokio::test(flavor = "multi_thread")]
async fn an_accounts_pacing_and_single_session_hold_across_two_gateways_and_a_handover() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(setup) = PacedSetup::new().await else {
        return;
    };
    let mut gateways = [setup.gateway("a.log").await, setup.gateway("b.log").await];
    let http = reqwest::Client::new();
    until_all_see(&http, &[&gateways[0], &gateways[1]]).await;
    // The lane settles with its rendezvous owner (the first gateway took it
    // while alone, and gives it up if it is the other's).
    let live = [gateways[0].id.clone(), gateways[1].id.clone()];
    let holder = live
        .iter()
        .position(|g| Some(g.as_str()) == target("account:paced", &live))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while live_leases(&setup.schema).await.get("account:paced") != Some(&live[holder]) {
        assert!(Instant::now() < deadline, "the lane does not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sockets = setup.sample_sockets();
    let mut sent = BTreeSet::new();
    for i in 0..PACED_SENDS {
        sent.insert(setup.send(&http, &gateways[i % 2].url, i).await);
    }
    // Three sent: the lane's holder stops (and gives its lanes up).
    setup.until_received(3).await;
    assert_eq!(
        live_leases(&setup.schema).await.get("account:paced"),
        Some(&live[holder]),
        "the lane stayed with its holder"
    );
    gateways[holder].stop().await;
    let before_handover = setup.received().len();
    // Where the store's pacing stands, next to what was sent: the next
    // holder goes by the store alone.
    let last_sent = setup.received().iter().map(|m| m.received_at_ms).max();
    let next_slot = setup
        .schema
        .query_text(
            "SELECT g.next_send_at FROM lane_leases l JOIN pacing g ON g.key = COALESCE(l.pace_key, l.lane)
             WHERE l.lane = 'account:paced'",
        )
        .await;
    eprintln!(
        "the holder stopped after {before_handover} of {PACED_SENDS} were sent, the last at {last_sent:?}; \
         the store's next slot: {next_slot:?}"
    );
    assert!(
        before_handover < PACED_SENDS,
        "the stopped gateway sent them all; nothing was left to hand over"
    );

    setup.check_paced(&sent).await;
    assert_eq!(
        live_leases(&setup.schema).await.get("account:paced"),
        Some(&live[1 - holder]),
        "the other gateway took the lane over"
    );
    // What made that hold: the store's next slot was an interval after the
    // last send (less the sandbox's stamping, as above).
    let (last_sent, next_slot) = (last_sent.unwrap(), next_slot[0].parse::<i64>().unwrap());
    assert!(
        next_slot >= last_sent + 1_000 - 50,
        "when the holder stopped, the store's next slot for the account was {} ms after its last send, not 1,000",
        next_slot - last_sent
    );
    sockets.assert_one_at_most().await;
}

/// A gateway joins while the one holding a paced account sends for it, and
/// the account's lane is the newcomer's share: it moves while messages are
/// going, paced throughout, and the account has one TikTok session open at
/// any time (the gateway that gave the lane up does not keep its own).
#[tokio::test(flavor = "multi_thread")]
async fn a_lane_moving_to_a_joining_gateway_keeps_its_pacing_and_one_session() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(setup) = PacedSetup::new().await else {
        return;
    };
    let a = setup.gateway("a.log").await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_leases(&setup.schema).await.get("account:paced") != Some(&a.id) {
        assert!(Instant::now() < deadline, "A alone does not take the lane");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sockets = setup.sample_sockets();
    let mut sent = BTreeSet::new();
    for i in 0..PACED_SENDS {
        sent.insert(setup.send(&http, &a.url, i).await);
    }
    setup.until_received(1).await;
    // A gateway whose share the lane is (ids are random: one that is not
    // stops at once, giving up nothing, and another is started).
    let mut b = None;
    for attempt in 0..30 {
        let mut candidate = setup.gateway(&format!("b{attempt}.log")).await;
        let live = [a.id.clone(), candidate.id.clone()];
        if target("account:paced", &live) == Some(candidate.id.as_str()) {
            b = Some(candidate);
            break;
        }
        candidate.stop().await;
    }
    let b = b.expect("no joining gateway got the lane in 30 tries");
    let deadline = Instant::now() + Duration::from_secs(15);
    while live_leases(&setup.schema).await.get("account:paced") != Some(&b.id) {
        assert!(Instant::now() < deadline, "the lane does not move to B");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved_after = setup.received().len();
    eprintln!("the lane moved after {moved_after} of {PACED_SENDS} were sent");
    assert!(
        moved_after < PACED_SENDS,
        "A sent them all before the lane moved"
    );

    setup.check_paced(&sent).await;
    sockets.assert_one_at_most().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_mid_burst_has_its_lanes_taken_over_and_every_message_delivered_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = schema.url.as_str();
    const LANES: u32 = 16;
    const SENDS: usize = 2_000;
    let sandbox =
        tiktok_dm_test_support::spawn_sandbox_with(Seed::with_crowd(LANES).unwrap()).await;
    let seed = sandbox.handle.seed().clone();
    // Each lane: a crowd user's session, its conversation, its uid.
    let lanes: Vec<(String, Conversation, Uid)> = (1..=LANES)
        .map(|i| {
            let user = sandbox.handle.account(&format!("user-{i}")).unwrap();
            (
                user.session.clone(),
                conversation_of(&seed, user.uid),
                user.uid,
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(db, "burst", &[]).await;
    let mut a = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("a.log")).await;
    let b = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("b.log")).await;
    let http = reqwest::Client::new();
    until_all_see(&http, &[&a, &b]).await;
    // Every acknowledgement takes 300 ms, so the kill finds sends in flight.
    sandbox
        .handle
        .delay_acks(Duration::from_millis(300), 1_000_000);

    let answered = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(tokio::sync::Semaphore::new(64));
    let mut posts = Vec::new();
    for i in 0..SENDS {
        let to_a = i % 2 == 0;
        let url = if to_a { a.url.clone() } else { b.url.clone() };
        let (session, c, _) = &lanes[(i / 2) % lanes.len()];
        let body = text_to(c, &format!("burst {i}"));
        let (http, key, session) = (http.clone(), key.clone(), session.clone());
        let (answered, room) = (Arc::clone(&answered), Arc::clone(&room));
        posts.push(tokio::spawn(async move {
            let _permit = room.acquire_owned().await.unwrap();
            let result = post(&http, &url, &key, Some(&session), &body).await;
            answered.fetch_add(1, Ordering::Relaxed);
            (to_a, result)
        }));
    }
    while answered.load(Ordering::Relaxed) < SENDS / 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let leases = live_leases(&schema).await;
    a.kill();
    let killed_at = now_ms();
    let killed = Instant::now();
    let dead_lanes: BTreeSet<String> = leases
        .iter()
        .filter(|(_, owner)| **owner == a.id)
        .map(|(lane, _)| lane.clone())
        .collect();
    let dead_uids: BTreeSet<i64> = lanes
        .iter()
        .filter(|(session, _, _)| {
            dead_lanes.contains(&tiktok_dm_gateway::pool::request_key(session))
        })
        .map(|(_, _, uid)| uid.get())
        .collect();
    assert!(
        !dead_uids.is_empty(),
        "the killed gateway held none of the {LANES} lanes: {leases:?}"
    );
    let in_list = dead_lanes
        .iter()
        .map(|l| format!("'{l}'"))
        .collect::<Vec<_>>()
        .join(",");
    let pending = schema
        .query_text(&format!(
            "SELECT count(*) FROM outbox WHERE state IN ('accepted', 'sending') AND lane IN ({in_list})"
        ))
        .await;
    assert_ne!(pending, ["0"], "the dead gateway's lanes had work left");

    // What the dead gateway's sockets had already carried is in by now;
    // a new message of its lanes after this is the survivor's.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before: BTreeSet<String> = sandbox
        .handle
        .messages()
        .into_iter()
        .map(|m| m.client_message_id)
        .collect();
    let watcher = {
        let handle = sandbox.handle.clone();
        tokio::spawn(async move {
            loop {
                let first = handle
                    .messages()
                    .into_iter()
                    .filter(|m| {
                        dead_uids.contains(&m.sender_uid) && !before.contains(&m.client_message_id)
                    })
                    .map(|m| m.received_at_ms)
                    .min();
                if let Some(at) = first {
                    return at - killed_at;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut accepted = BTreeSet::new();
    let (mut lost, mut to_b) = (0, 0);
    for p in posts {
        let (to_a, result) = p.await.unwrap();
        match result {
            Ok((200 | 202, answer)) => {
                assert!(accepted.insert(client_message_id(&answer)));
                to_b += usize::from(!to_a);
            }
            Ok((status, answer)) => panic!("unexpected answer {status}: {answer}"),
            Err(_) if to_a => lost += 1,
            Err(e) => panic!("the surviving gateway failed a send: {e}"),
        }
    }
    assert_eq!(to_b, SENDS / 2, "the survivor accepted every send it got");
    assert!(lost > 0, "some sends reached the gateway after its death");

    let takeover = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the survivor delivers none of the dead gateway's lanes")
        .unwrap();
    eprintln!("takeover: {takeover} ms");
    // The lease (3 s), a tick (1 s), the claims' lease (2 s), and slack.
    assert!(takeover < 10_000, "takeover took {takeover} ms");
    until_query(
        &schema,
        "SELECT count(*) FROM outbox WHERE state <> 'sent'",
        "0",
        Duration::from_secs(40),
    )
    .await;
    eprintln!(
        "all delivered {} ms after the kill ({} accepted, {lost} sends lost with the gateway)",
        killed.elapsed().as_millis(),
        accepted.len()
    );
    // Every survivor's lane is its own now.
    let leases = live_leases(&schema).await;
    assert!(
        leases.values().all(|owner| *owner == b.id),
        "lanes still held by the dead gateway: {leases:?}"
    );

    let stored: BTreeSet<String> = schema
        .query_text("SELECT client_message_id FROM outbox")
        .await
        .into_iter()
        .collect();
    // A send the gateway stored just before it died, unanswered, is
    // delivered too: stored, not accepted.
    assert!(accepted.is_subset(&stored));
    let received: Vec<String> = sandbox
        .handle
        .messages()
        .into_iter()
        .map(|m| m.client_message_id)
        .collect();
    let unique: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(received.len(), unique.len(), "a message stored twice");
    assert_eq!(unique, stored, "every stored message delivered, once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_started_later_gets_its_share_of_the_accounts_a_few_at_a_time() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = schema.url.as_str();
    const ACCOUNTS: usize = 24;
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    // The schema first, then the accounts at once.
    create_key(db, "unused", &[]).await;
    let names: Vec<String> = (1..=ACCOUNTS).map(|i| format!("shop-{i:02}")).collect();
    let mut adds = Vec::new();
    for name in &names {
        let (db, name) = (db.to_owned(), name.clone());
        adds.push(tokio::spawn(async move {
            add_account(&db, &name, "sandbox-session-alice").await;
        }));
    }
    for add in adds {
        add.await.unwrap();
    }
    let lanes: Vec<String> = names.iter().map(|n| format!("account:{n}")).collect();
    let http = reqwest::Client::new();

    let a = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("a.log")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leases = live_leases(&schema).await;
        if leases.len() == ACCOUNTS && leases.values().all(|o| *o == a.id) {
            break;
        }
        assert!(Instant::now() < deadline, "A alone holds {leases:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its own view says so from its next heartbeat.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let view = a.view(&http).await;
        let listed = &view["gateways"];
        if listed[0]["owned"] == ACCOUNTS {
            assert_eq!(listed.as_array().unwrap().len(), 1, "{view}");
            assert_eq!(listed[0]["id"].as_str(), Some(a.id.as_str()), "{view}");
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let b = Gateway::start(db, &sandbox.base_url(), &[], dir.path().join("b.log")).await;
    let started = Instant::now();
    let live = vec![a.id.clone(), b.id.clone()];
    let share: BTreeSet<&String> = lanes
        .iter()
        .filter(|l| target(l, &live) == Some(b.id.as_str()))
        .collect();
    eprintln!("B's share: {} of {ACCOUNTS}", share.len());
    // Whenever sampled: no lane held by anyone else, B taking at most a
    // couple of ticks' worth at once, until it holds its share and A the rest.
    let mut b_held = 0;
    let mut steps = Vec::new();
    let deadline = started + Duration::from_secs(20);
    loop {
        let leases = live_leases(&schema).await;
        assert!(
            leases.values().all(|o| *o == a.id || *o == b.id),
            "{leases:?}"
        );
        let now_b: BTreeSet<&String> = leases
            .iter()
            .filter(|(_, o)| **o == b.id)
            .map(|(l, _)| l)
            .collect();
        assert!(
            now_b.is_subset(&share),
            "B holds lanes that are A's: {now_b:?}"
        );
        if now_b.len() != b_held {
            steps.push((started.elapsed().as_millis(), now_b.len()));
            assert!(
                now_b.len() <= b_held + 2 * REBALANCE_STEP,
                "B took {} lanes at once (from {b_held})",
                now_b.len()
            );
            b_held = now_b.len();
        }
        if leases.len() == ACCOUNTS && now_b.len() == share.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B holds {} of its {} lanes, {} held in all, after {:?}: {steps:?}",
            now_b.len(),
            share.len(),
            leases.len(),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("B's lanes over time (ms, lanes): {steps:?}");
    assert!(!share.is_empty(), "B's share came out empty");

    // Each gateway's view agrees once its next heartbeat has read it.
    let want: BTreeMap<String, u64> = [
        (a.id.clone(), (ACCOUNTS - share.len()) as u64),
        (b.id.clone(), share.len() as u64),
    ]
    .into();
    for g in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let view = g.view(&http).await;
            let seen: BTreeMap<String, u64> = view["gateways"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    (
                        g["id"].as_str().unwrap().to_owned(),
                        g["owned"].as_u64().unwrap(),
                    )
                })
                .collect();
            if seen == want {
                assert_eq!(view["gateway"].as_str(), Some(g.id.as_str()));
                break;
            }
            assert!(Instant::now() < deadline, "{} sees {view}", g.id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
