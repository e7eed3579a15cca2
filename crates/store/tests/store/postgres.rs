//! The suite against PostgreSQL, each test in a schema of its own
//! ([`PgSchema`]: the server `TDM_TEST_POSTGRES_URL` names, by default the
//! local one). Without a server each test is skipped (see `PgSchema::create`).

use tiktok_dm_store::PostgresStore;
use tiktok_dm_test_support::postgres::PgSchema;

/// A fresh store in a new schema, or `None` (the test is skipped) without a
/// server.
pub async fn open() -> Option<(PostgresStore, PgSchema)> {
    let schema = PgSchema::create().await?;
    let store = PostgresStore::open(&schema.url).await.unwrap();
    Some((store, schema))
}

/// The first column of each row `sql` reads from the test's schema.
pub async fn query(schema: &PgSchema, sql: &str) -> Vec<String> {
    schema.query_text(sql).await
}

crate::store_suite!(open, query);
crate::inbound_suite!(open, query);
crate::webhooks_suite!(open);
crate::lanes_suite!(open);

#[tokio::test]
async fn a_second_open_of_the_same_database_finds_the_migrations_done_and_the_data() {
    use tiktok_dm_store::Store as _;
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::suite::new_key(&store, "durable", None).await;
    let again = PostgresStore::open(&schema.url).await.unwrap();
    let found = again
        .api_key_by_hash(&crate::suite::hash("durable"))
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, key.id);
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_server_is_a_clear_error_without_the_password() {
    let e = PostgresStore::open("postgres://user:hunter2@127.0.0.1:99999/db")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("not valid"), "{e}");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let e = PostgresStore::open("postgres://user:hunter2@127.0.0.1:9/db")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(
        e.to_string().starts_with("the database is unavailable: "),
        "{e}"
    );
    assert!(matches!(e, tiktok_dm_store::Error::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn any_store_picks_the_backend_by_the_urls_scheme() {
    use tiktok_dm_store::{AnyStore, Store as _};
    let Some((_store, schema)) = open().await else {
        return;
    };
    let pg = AnyStore::open(&schema.url).await.unwrap();
    assert!(matches!(pg, AnyStore::Postgres(_)));
    let key = crate::suite::new_key(&pg, "through-any", None).await;
    assert_eq!(pg.list_api_keys().await.unwrap(), vec![key]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.sqlite");
    let sqlite = AnyStore::open(file.to_str().unwrap()).await.unwrap();
    assert!(matches!(sqlite, AnyStore::Sqlite(_)));
    assert!(sqlite.list_api_keys().await.unwrap().is_empty());

    // libpq's key=value form of the same database.
    let config: tokio_postgres::Config = schema.url.parse().unwrap();
    let mut words = Vec::new();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        words.push(format!("host={host}"));
    }
    if let Some(port) = config.get_ports().first() {
        words.push(format!("port={port}"));
    }
    words.extend(config.get_user().map(|u| format!("user={u}")));
    words.extend(config.get_dbname().map(|d| format!("dbname={d}")));
    if let Some(p) = config.get_password() {
        words.push(format!("password={}", String::from_utf8_lossy(p)));
    }
    words.push(format!("options=-csearch_path={}", schema.name));
    let key_value = AnyStore::open(&words.join(" ")).await.unwrap();
    assert!(matches!(key_value, AnyStore::Postgres(_)));
    assert_eq!(
        key_value.list_api_keys().await.unwrap().len(),
        1,
        "the key made through the URL form"
    );
}

/// Whether each connection named `app` uses TLS, as the server sees it.
async fn tls_of(schema: &PgSchema, app: &str) -> Vec<String> {
    schema
        .query_text(&format!(
            "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
        ))
        .await
}

/// `sslmode` means what it means to libpq: `prefer` (the default) and
/// `require` encrypt without checking the certificate, `disable` does not
/// encrypt, `verify-ca` checks the chain against `sslrootcert` (or the
/// built-in roots, which do not know a test server's certificate).
#[tokio::test]
async fn tls_follows_sslmode_as_libpq_does() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    if schema.query_text("SHOW ssl").await != ["on"] {
        eprintln!("skipped: this PostgreSQL server does not offer TLS");
        return;
    }
    let app = |label: &str| format!("tdm_{}_{label}", schema.name);
    let mut open_stores = Vec::new();
    for (label, mode, encrypted) in [
        ("default", "", "true"),
        ("require", "&sslmode=require", "true"),
        ("disable", "&sslmode=disable", "false"),
    ] {
        let name = app(label);
        let url = format!("{}{mode}&application_name={name}", schema.url);
        open_stores.push(PostgresStore::open(&url).await.unwrap());
        let seen = tls_of(&schema, &name).await;
        assert!(
            !seen.is_empty() && seen.iter().all(|s| s == encrypted),
            "{label}: {seen:?}"
        );
    }
    for mode in ["verify-ca", "verify-full"] {
        let url = format!("{}&password=hunter2&sslmode={mode}", schema.url);
        let e = PostgresStore::open(&url).await.unwrap_err().to_string();
        eprintln!("{mode}: {e}");
        assert!(
            e.contains("certificate") && !e.contains("hunter2"),
            "{mode}: {e}"
        );
    }
    let cert = schema.query_text("SHOW ssl_cert_file").await;
    let Some(cert) = cert.first().filter(|c| std::fs::read(c).is_ok()) else {
        eprintln!(
            "skipped the sslrootcert part: the server's certificate file is not readable here"
        );
        return;
    };
    let name = app("verify_ca");
    let url = format!(
        "{}&sslmode=verify-ca&sslrootcert={cert}&application_name={name}",
        schema.url
    );
    let _store = PostgresStore::open(&url).await.unwrap();
    // The pooled connection, and the one that hears of key changes (which
    // may still be on its way).
    let seen = tls_of(&schema, &name).await;
    assert!(
        !seen.is_empty() && seen.iter().all(|s| s == "true"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_bad_sslmode_or_root_file_is_a_clear_error() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let e = PostgresStore::open(&format!("{}&sslmode=verify", schema.url))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("sslmode \"verify\" is not one of"),
        "{e}"
    );
    let e = PostgresStore::open(&format!(
        "{}&sslmode=verify-full&sslrootcert=/no/such.pem",
        schema.url
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("/no/such.pem"), "{e}");
}

/// An acceptance that fails part-way (here a request id already taken) ends
/// its transaction: the pooled connections serve the next operations, and none
/// is left idle in a transaction. Both paths: a key without a limit (the COMMIT
/// went out with the writes) and one with a limit.
#[tokio::test]
async fn a_failed_acceptance_leaves_no_transaction_open() {
    use tiktok_dm_store::{Kind, Store as _};
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let app = format!("tdm_{}", schema.name);
    let store = PostgresStore::open(&format!("{}&application_name={app}", schema.url))
        .await
        .unwrap();
    let free = crate::suite::new_key(&store, "free", None).await;
    let limited = crate::suite::new_key(&store, "limited", Some(100)).await;
    for (key, windows) in [(&free, Vec::new()), (&limited, crate::suite::daily(100))] {
        let id = format!("req_{}", key.name);
        let first = crate::suite::request(&id, key.id, None, &[Kind::Text]);
        store.enqueue(first, &windows, 10).await.unwrap();
        for _ in 0..3 {
            // The same id for other content (the same content would be
            // answered as the request a lost COMMIT answer left stored).
            let mut again = crate::suite::request(&id, key.id, None, &[Kind::Text]);
            again.request_hash = "other content".into();
            let e = store.enqueue(again, &windows, 10).await.unwrap_err();
            assert!(e.to_string().contains("23505"), "{e}");
        }
        for n in 0..20 {
            let r = crate::suite::request(&format!("{id}_{n}"), key.id, None, &[Kind::Text]);
            store.enqueue(r, &windows, 10).await.unwrap();
        }
        let today = &crate::suite::daily(100)[0];
        assert_eq!(
            crate::suite::used(&store, key.id, today).await,
            21,
            "{}",
            key.name
        );
    }
    // Concurrent repeats of one idempotency key on the limited key, made to
    // race: a lock taken from another session holds their inserts until all
    // have found no earlier request, so all but one lose on the unique index,
    // roll back and answer as repeats.
    let (blocker, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    blocker
        .batch_execute("BEGIN; LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = crate::suite::request(
                    &format!("t{i}"),
                    limited.id,
                    Some("same"),
                    &[Kind::Text],
                );
                r.request_hash = "same-content".into();
                store
                    .enqueue(r, &crate::suite::daily(100), 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            tiktok_dm_store::Enqueued::Accepted { .. } => accepted += 1,
            tiktok_dm_store::Enqueued::Replay { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    let stuck = schema
        .query_text(&format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = '{app}' AND state <> 'idle'"
        ))
        .await;
    assert_eq!(stuck, ["0"]);
}

/// Gateways appending to one database at once (4 stores, each its own pool,
/// 50 events each in batches of 1 to 3) commit in any order; a reader polling
/// `events_after` meanwhile moves only forward, and still sees every event
/// that is finally in the log: no event commits below a cursor it passed.
#[tokio::test]
async fn concurrent_appenders_never_let_a_polling_reader_skip_an_event() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tiktok_dm_store::{EventFilter, Store as _};
    let Some((store, schema)) = open().await else {
        return;
    };
    let mut appenders = Vec::new();
    for task in 0..4usize {
        let url = schema.url.clone();
        appenders.push(tokio::spawn(async move {
            let store = PostgresStore::open(&url).await.unwrap();
            let mut n = 0;
            while n < 50 {
                let size = (1 + (n + task) % 3).min(50 - n);
                let batch = (n..n + size)
                    .map(|i| {
                        let key = format!("{task}-{i}");
                        crate::inbound::event(
                            &format!("shop{task}"),
                            "message.received",
                            Some(&key),
                        )
                    })
                    .collect();
                let appended = store.append_events(batch, 10).await.unwrap();
                assert_eq!(crate::inbound::cursors(&appended).len(), size);
                n += size;
            }
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let (mut last, mut seen, mut polls) = (0, Vec::new(), 0);
            loop {
                // Read before the poll: an empty poll after every append
                // ended has seen everything.
                let finished = done.load(Ordering::SeqCst);
                let batch = store
                    .events_after(last, &EventFilter::default(), 7)
                    .await
                    .unwrap();
                polls += 1;
                for e in &batch {
                    assert!(e.cursor > last, "{} after {last}", e.cursor);
                    last = e.cursor;
                    seen.push(e.cursor);
                }
                if batch.is_empty() {
                    if finished {
                        return (seen, polls);
                    }
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    for a in appenders {
        a.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (seen, polls) = reader.await.unwrap();
    let all: Vec<i64> = crate::inbound::all_after(&store, 0)
        .await
        .iter()
        .map(|e| e.cursor)
        .collect();
    assert_eq!(all.len(), 200);
    assert!(
        polls > 10,
        "the reader polled while they appended ({polls} polls)"
    );
    assert_eq!(seen, all, "the reader skipped an event");
}

/// Gateways claiming webhook deliveries at once (4 stores, each its own
/// pool) never claim one twice, and between them claim every one.
#[tokio::test]
async fn concurrent_claimers_never_claim_a_webhook_delivery_twice() {
    use tiktok_dm_store::Store as _;
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::inbound::key_for(&store, "k", &[], true).await;
    for _ in 0..2 {
        let hook = crate::inbound::hook(key.id, &["message.received"]);
        store.create_webhook(hook, 10, 1).await.unwrap();
    }
    let events = (0..100)
        .map(|_| crate::inbound::event("shopA", "message.received", None))
        .collect();
    crate::inbound::append(&store, events, 10).await;
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let url = schema.url.clone();
        claimers.push(tokio::spawn(async move {
            let store = PostgresStore::open(&url).await.unwrap();
            let mut ids = Vec::new();
            loop {
                let claimed = store
                    .claim_webhook_deliveries(7, 100, 60_000, 20)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return ids;
                }
                ids.extend(claimed.iter().map(|d| d.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((claimed, all.len()), (200, 200), "each delivery once");
}

/// Gateways claiming at once (4 stores, each its own pool) keep a webhook
/// within its share in flight between them: claims take turns, so none
/// counts another's leases before they are committed.
#[tokio::test]
async fn concurrent_claimers_keep_a_webhook_within_its_share_in_flight() {
    use tiktok_dm_store::Store as _;
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::inbound::key_for(&store, "k", &[], true).await;
    for _ in 0..2 {
        let hook = crate::inbound::hook(key.id, &["message.received"]);
        store.create_webhook(hook, 10, 1).await.unwrap();
    }
    let events = (0..50)
        .map(|_| crate::inbound::event("shopA", "message.received", None))
        .collect();
    crate::inbound::append(&store, events, 10).await;
    for round in 0..5 {
        let mut claimers = Vec::new();
        for _ in 0..4 {
            let url = schema.url.clone();
            claimers.push(tokio::spawn(async move {
                let store = PostgresStore::open(&url).await.unwrap();
                store
                    .claim_webhook_deliveries(100, 3, 60_000, 20)
                    .await
                    .unwrap()
            }));
        }
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await.unwrap());
        }
        let expected = if round == 0 { 6 } else { 0 };
        assert_eq!(
            claimed.len(),
            expected,
            "round {round}: three of each webhook in all"
        );
    }
}

/// Two gateways (two stores, each with its own writer task batching
/// acceptances) accept for one key at once, 200 sends against a daily limit
/// of 50: exactly 50 are accepted, each answered with its own count (1 to
/// 50, as the counters were locked from read to commit), and the rest are
/// refused with a count within the limit.
#[tokio::test]
async fn concurrent_acceptances_from_two_stores_never_pass_a_limit() {
    use tiktok_dm_store::{Enqueued, Kind, Store as _};
    let Some((first, schema)) = open().await else {
        return;
    };
    let second = PostgresStore::open(&schema.url).await.unwrap();
    let key = crate::suite::new_key(&first, "limited", Some(50)).await.id;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                let r = crate::suite::request(&format!("q{i}"), key, None, &[Kind::Text]);
                store
                    .enqueue(r, &crate::suite::daily(50), 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut counts, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Enqueued::Accepted { snapshot, .. } => counts.push(snapshot.used[0]),
            Enqueued::QuotaExceeded {
                limit: 50, used, ..
            } => {
                assert!(used <= 50, "{used}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u64>>());
    assert_eq!(refused, 150);
    let today = &crate::suite::daily(50)[0];
    assert_eq!(crate::suite::used(&second, key, today).await, 50);
    let rows = schema.query_text("SELECT count(*)::text FROM outbox").await;
    assert_eq!(rows, ["50"]);
}

/// Sends held up together (so they form one batch): a request id already
/// taken fails alone; a replay and a conflicting reuse of an idempotency key
/// answer as such; two new requests with one idempotency key are accepted
/// once and the other is its replay; the rest are accepted, and the counters
/// count exactly what was written.
#[tokio::test]
async fn a_failing_request_in_a_batch_does_not_fail_the_others() {
    held_batch(true).await;
}

/// The same batch without the failing request: it commits as one, with the
/// same answers.
#[tokio::test]
async fn a_batch_answers_repeats_conflicts_and_twins_of_an_idempotency_key() {
    held_batch(false).await;
}

/// Holds the writer on a first send while the others queue, then lets them
/// run as one batch (with a request id already taken when `taken`).
async fn held_batch(taken: bool) {
    use tiktok_dm_store::{Enqueued, Kind, Store as _};
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::suite::new_key(&store, "k", Some(1_000)).await.id;
    let windows = crate::suite::daily(1_000);
    let r = crate::suite::request("taken", key, Some("k1"), &[Kind::Text]);
    store.enqueue(r, &windows, 10).await.unwrap();
    let (blocker, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    blocker
        .batch_execute("BEGIN; LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let send = |id: &str, idempotency: Option<&str>, hash: &str| {
        let mut r = crate::suite::request(id, key, idempotency, &[Kind::Text, Kind::Image]);
        r.request_hash = hash.into();
        let (store, windows) = (store.clone(), windows.clone());
        tokio::spawn(async move { store.enqueue(r, &windows, 10).await })
    };
    // The first batch waits for the lock; the others queue behind it.
    let plug = send("plug", None, "p");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let taken = taken.then(|| send("taken", None, "t"));
    let replay = send("again", Some("k1"), "hash-of-taken");
    let conflict = send("other", Some("k1"), "something else");
    let twins = [
        send("twin1", Some("k2"), "h2"),
        send("twin2", Some("k2"), "h2"),
    ];
    let fresh: Vec<_> = (0..30)
        .map(|i| send(&format!("f{i}"), None, &format!("f{i}")))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let accepted = |e: &Enqueued| matches!(e, Enqueued::Accepted { .. });
    assert!(accepted(&plug.await.unwrap().unwrap()));
    if let Some(taken) = taken {
        let e = taken.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("23505"), "{e}");
    }
    assert_eq!(
        replay.await.unwrap().unwrap(),
        Enqueued::Replay {
            request_id: "taken".into()
        }
    );
    assert_eq!(
        conflict.await.unwrap().unwrap(),
        Enqueued::IdempotencyConflict
    );
    let mut twin_answers = Vec::new();
    for t in twins {
        twin_answers.push(t.await.unwrap().unwrap());
    }
    let first_twin = match twin_answers.iter().find(|e| accepted(e)) {
        Some(Enqueued::Accepted { request_id, .. }) => request_id.clone(),
        _ => panic!("{twin_answers:?}"),
    };
    assert!(twin_answers.contains(&Enqueued::Replay {
        request_id: first_twin
    }));
    for f in fresh {
        assert!(accepted(&f.await.unwrap().unwrap()));
    }
    // taken, plug, a twin, 30 fresh: 33 requests, 65 messages.
    let rows = schema.query_text("SELECT count(*)::text FROM outbox").await;
    assert_eq!(rows, ["65"]);
    assert_eq!(crate::suite::used(&store, key, &windows[0]).await, 65);
}

/// Sends racing a revocation: each is either accepted (and written) or
/// refused as revoked, and once the revocation has returned nothing more is
/// accepted.
#[tokio::test]
async fn nothing_is_accepted_after_a_revocation_commits_amid_a_burst() {
    use tiktok_dm_store::{Enqueued, Kind, Store as _};
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::suite::new_key(&store, "k", None).await.id;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let r = crate::suite::request(&format!("r{i}"), key, None, &[Kind::Text]);
                store.enqueue(r, &[], 10).await.unwrap()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(store.revoke_api_key("k", 20).await.unwrap());
    let after = crate::suite::request("after", key, None, &[Kind::Text]);
    assert_eq!(
        store.enqueue(after, &[], 30).await.unwrap(),
        Enqueued::KeyRevoked
    );
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Enqueued::Accepted { .. } => accepted += 1,
            Enqueued::KeyRevoked => {}
            other => panic!("{other:?}"),
        }
    }
    let rows = schema.query_text("SELECT count(*)::text FROM outbox").await;
    assert_eq!(rows, [accepted.to_string()]);
}

/// Sent marks made at once go in groups: each is applied under its own
/// claim's token (a stale token changes nothing and answers `false`), and a
/// request's session is wiped once all its messages are sent.
#[tokio::test]
async fn concurrent_sent_marks_apply_each_under_its_own_token() {
    use tiktok_dm_store::{Claim, Enqueued, Kind, Store as _};
    let Some((store, schema)) = open().await else {
        return;
    };
    let key = crate::suite::new_key(&store, "k", None).await.id;
    let mut claims = Vec::new();
    for i in 0..60 {
        let mut r = crate::suite::request(&format!("s{i}"), key, None, &[Kind::Text]);
        r.claim_first_ms = Some(60_000);
        match store.enqueue(r, &[], 10).await.unwrap() {
            Enqueued::Accepted {
                claimed: Some(m), ..
            } => claims.push(m.claim()),
            other => panic!("{other:?}"),
        }
    }
    let stale = Claim {
        id: claims[0].id,
        token: claims[0].token + 7,
    };
    let marks: Vec<_> = std::iter::once(stale)
        .chain(claims)
        .map(|claim| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .mark_sent(claim, "server-id", "ws", 20, None)
                    .await
                    .unwrap()
                    .applied
            })
        })
        .collect();
    let mut applied = Vec::new();
    for m in marks {
        applied.push(m.await.unwrap());
    }
    assert!(!applied[0], "the stale token");
    assert!(applied[1..].iter().all(|a| *a));
    let left = schema
        .query_text(
            "SELECT count(*)::text FROM outbox WHERE state <> 'sent' OR server_message_id <> 'server-id'",
        )
        .await;
    assert_eq!(left, ["0"]);
    let sessions = schema
        .query_text("SELECT count(*)::text FROM requests WHERE session_sealed IS NOT NULL")
        .await;
    assert_eq!(sessions, ["0"]);
}

/// A request whose group committed but whose answer was lost runs again
/// alone and meets itself: it answers as accepted (a replay of itself), not
/// as an error a client would retry with a second copy.
#[tokio::test]
async fn a_request_met_again_after_a_lost_commit_answer_is_accepted_not_an_error() {
    use tiktok_dm_store::{Enqueued, Kind, Store as _};
    let Some((store, _schema)) = open().await else {
        return;
    };
    let key = crate::suite::new_key(&store, "k", None).await;
    let first = crate::suite::request("req_once", key.id, None, &[Kind::Text]);
    store.enqueue(first.clone(), &[], 10).await.unwrap();
    let again = store.enqueue(first, &[], 11).await.unwrap();
    assert_eq!(
        again,
        Enqueued::Replay {
            request_id: "req_once".into()
        }
    );
    let outbox = crate::suite::OUTBOX_CONTENT;
    assert_eq!(query(&_schema, outbox).await.len(), 1, "stored once");
}
