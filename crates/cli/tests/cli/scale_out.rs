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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tiktok_dm_gateway::now_ms;
use tiktok_dm_gateway::ownership::{REBALANCE_STEP, target};
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_sandbox::{Conversation, Seed};
use tiktok_dm_test_support::postgres::PgSchema;

use crate::{args, json, run_with_env};

/// 32 bytes, base64: the master key every gateway of a database shares.
pub(crate) const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The admin key of every gateway here.
pub(crate) const ADMIN_KEY: &str = "scale-out-admin-key-0123456789";
/// Lanes a gateway holds without renewing them (the least allowed): a dead
/// gateway's lanes move after this, and ownership ticks every second.
pub(crate) const OWNER_LEASE_SECS: u64 = 3;

/// The current time on the database's clock, in Unix ms, as SQL.
pub(crate) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A `tiktok-dm serve` on the test's database; killed when dropped, its log
/// (standard error) shown when the test is failing.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) id: String,
    log: PathBuf,
}

impl Gateway {
    /// Starts a gateway on `db`, sending to the sandbox at `sandbox_url`, with
    /// short leases, listening off, and `extra` variables; waits until it
    /// serves.
    pub(crate) async fn start(
        db: &str,
        sandbox_url: &str,
        extra: &[(&str, &str)],
        log: PathBuf,
    ) -> Self {
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
    pub(crate) async fn view(&self, http: &reqwest::Client) -> serde_json::Value {
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
    pub(crate) async fn stop(&mut self) {
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
    pub(crate) fn kill(&mut self) {
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
pub(crate) async fn until_all_see(http: &reqwest::Client, gateways: &[&Gateway]) {
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
pub(crate) async fn create_key(db: &str, name: &str, extra: &[&str]) -> String {
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
pub(crate) async fn add_account(db: &str, name: &str, session: &str) {
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
pub(crate) fn text_to(c: &Conversation, text: &str) -> serde_json::Value {
    serde_json::json!({
        "conversation_id": c.conversation_id.to_string(),
        "conversation_short_id": c.conversation_short_id.get(),
        "text": text,
    })
}

/// POSTs a send with `Prefer: respond-async` (and `X-TikTok-Session` when
/// `session` is given): the status and the answer, or the transport error
/// (the gateway is gone).
pub(crate) async fn post(
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
pub(crate) fn client_message_id(answer: &serde_json::Value) -> String {
    answer["messages"][0]["client_message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no client message id: {answer}"))
        .to_owned()
}

/// Waits until `sql`'s first row reads `want`, polling; panics after `within`.
pub(crate) async fn until_query(schema: &PgSchema, sql: &str, want: &str, within: Duration) {
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
pub(crate) async fn live_leases(schema: &PgSchema) -> BTreeMap<String, String> {
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
pub(crate) fn conversation_of(seed: &Seed, uid: Uid) -> Conversation {
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
