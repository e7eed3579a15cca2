//! One test suite for every store backend (matrix-sdk's pattern): each backend
//! instantiates `store_suite!` with a function that opens a fresh store
//! (SQLite here, PostgreSQL in `postgres.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod inbound;
mod lanes;
mod postgres;
mod postgres_notices;
mod suite;
mod webhooks;

mod sqlite {
    use tiktok_dm_store::SqliteStore;

    /// A fresh database file per test; the directory lives as long as the
    /// store. Always there (`Option` as the suites' `$open` answers).
    pub async fn open() -> Option<(SqliteStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("gateway.sqlite").to_str().unwrap())
            .await
            .unwrap();
        Some((store, dir))
    }

    /// The first column of each row `sql` reads from the test's database.
    pub async fn query(dir: &tempfile::TempDir, sql: &str) -> Vec<String> {
        let db = rusqlite::Connection::open(dir.path().join("gateway.sqlite")).unwrap();
        let mut s = db.prepare(sql).unwrap();
        s.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    crate::store_suite!(open, query);
    crate::inbound_suite!(open, query);
    crate::webhooks_suite!(open);
    crate::lanes_suite!(open);

    /// The last SQLite migration.
    const LAST_MIGRATION: i64 = 14;

    /// The last migration a database file records.
    fn user_version(path: &std::path::Path) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn reopening_the_file_keeps_everything_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "durable", None).await;
        drop(store);
        let again = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let found = tiktok_dm_store::Store::api_key_by_hash(&again, &crate::suite::hash("durable"))
            .await
            .unwrap();
        assert_eq!(found.unwrap().id, key.id);
    }

    /// Migration 3 fills the counters from an existing outbox; its SQL must give
    /// the same numbers the live counters keep.
    #[tokio::test]
    async fn the_counter_backfill_matches_the_live_counters() {
        use tiktok_dm_store::{Kind, State, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "k", None).await;
        let day = 86_400_000;
        for (i, at) in [5 * day, 40 * day, 40 * day + 9, 70 * day]
            .into_iter()
            .enumerate()
        {
            let r =
                crate::suite::request(&format!("r{i}"), key.id, None, &[Kind::Image, Kind::Text]);
            store.enqueue(r, &[], at).await.unwrap();
        }
        let claimed = crate::suite::claim(&store, 80 * day, 60_000, 1).await;
        store
            .finish(
                claimed[0].claim(),
                State::Failed,
                &crate::suite::failure(tiktok_dm_store::FailureCode::UpstreamError),
                80 * day,
                None,
            )
            .await
            .unwrap();
        let db = rusqlite::Connection::open(&path).unwrap();
        let snapshot = "SELECT api_key_id, period, start, messages, image_bytes FROM usage_counters WHERE messages > 0 ORDER BY 1, 2, 3";
        let read = |db: &rusqlite::Connection| -> Vec<(i64, String, i64, i64, i64)> {
            let mut s = db.prepare(snapshot).unwrap();
            s.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        let live = read(&db);
        assert_eq!(
            live.len(),
            5,
            "2 days, 2 months, all (the failed one is given back): {live:?}"
        );
        db.execute("DELETE FROM usage_counters", []).unwrap();
        let migration = include_str!("../../migrations/sqlite/0003_counters.sql");
        for statement in migration.split(';') {
            let statement = statement.trim();
            if statement.contains("INSERT INTO usage_counters") {
                db.execute(statement, []).unwrap();
            }
        }
        let rebuilt = read(&db);
        assert_eq!(rebuilt, live);
    }

    /// A database made by the first release (sqlx's migrator, migration 1 only)
    /// opens, gets the later migrations, and keeps its keys.
    #[tokio::test]
    async fn a_database_from_the_sqlx_migrator_is_upgraded_in_place() {
        use tiktok_dm_store::Store as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let db = rusqlite::Connection::open(&path).unwrap();
            db.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
                .unwrap();
            db.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                     installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                     checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);
                 INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                     VALUES (1, 'init', 1, x'00', 0);",
            )
            .unwrap();
            db.execute(
                "INSERT INTO api_keys (name, prefix, key_hash, created_at) VALUES ('old', 'tdm_old', ?1, 5)",
                [&crate::suite::hash("old")[..]],
            )
            .unwrap();
        }
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = store
            .api_key_by_hash(&crate::suite::hash("old"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.name, "old");
        // Migrations 2 and 3 ran: sends count in the new counters.
        let r = crate::suite::request("after", key.id, None, &[tiktok_dm_store::Kind::Image]);
        store.enqueue(r, &[], 10).await.unwrap();
        let totals = crate::suite::totals(&store, key.id, 0, 0).await;
        assert_eq!((totals.total, totals.image_bytes), (1, 16));
        assert_eq!(user_version(&path), LAST_MIGRATION);
    }

    /// Accounts stored before migration 10 are listened to, and active
    /// since they were made.
    #[tokio::test]
    async fn accounts_stored_before_listening_are_listened_to_and_active_since_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v9.sqlite");
        {
            let db = rusqlite::Connection::open(&path).unwrap();
            for sql in [
                include_str!("../../migrations/sqlite/0001_init.sql"),
                include_str!("../../migrations/sqlite/0002_usage.sql"),
                include_str!("../../migrations/sqlite/0003_counters.sql"),
                include_str!("../../migrations/sqlite/0004_lean_outbox.sql"),
                include_str!("../../migrations/sqlite/0005_open_kinds.sql"),
                include_str!("../../migrations/sqlite/0006_claim_token.sql"),
                include_str!("../../migrations/sqlite/0007_key_accounts.sql"),
                include_str!("../../migrations/sqlite/0008_retention.sql"),
                include_str!("../../migrations/sqlite/0009_events.sql"),
            ] {
                db.execute_batch(sql).unwrap();
            }
            db.execute_batch(
                "PRAGMA user_version = 9;
                 INSERT INTO accounts (name, session_sealed, created_at, updated_at) VALUES ('old', x'01', 5, 9);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(
            crate::inbound::account_states(&store).await,
            [(
                "old".to_owned(),
                true,
                tiktok_dm_store::AccountStatus::Active,
                5,
                5
            )]
        );
        assert_eq!(user_version(&path), LAST_MIGRATION);
    }

    /// Migration 4 rebuilds the outbox: every row keeps its id and state, a
    /// message left pending is still delivered, and ids continue after the old
    /// sequence (not after the highest surviving row).
    #[tokio::test]
    async fn the_outbox_rebuild_keeps_rows_and_the_id_sequence() {
        use tiktok_dm_store::{Kind, State, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.sqlite");
        {
            let db = rusqlite::Connection::open(&path).unwrap();
            for sql in [
                include_str!("../../migrations/sqlite/0001_init.sql"),
                include_str!("../../migrations/sqlite/0002_usage.sql"),
                include_str!("../../migrations/sqlite/0003_counters.sql"),
            ] {
                db.execute_batch(sql).unwrap();
            }
            db.execute_batch(
                "PRAGMA user_version = 3;
                 INSERT INTO api_keys (id, name, prefix, key_hash, created_at) VALUES (1, 'k', 'tdm_k', x'01', 5);
                 INSERT INTO requests (id, api_key_id, request_hash, session_sealed, conversation_id, conversation_short_id, created_at)
                     VALUES ('req_old', 1, 'h', x'0102', '0:1:1:2', 42, 5);
                 INSERT INTO outbox (id, request_id, position, kind, client_message_id, text, state, next_attempt_at, api_key_id, created_at, updated_at, server_message_id)
                     VALUES (3, 'req_old', 0, 'text', '5c822568-65d8-451b-a38a-a9e046268f50', 'first', 'sent', 5, 1, 5, 6, '777'),
                            (7, 'req_old', 1, 'text', '5c822568-65d8-451b-a38a-a9e046268f51', 'second', 'accepted', 5, 1, 5, 5, NULL);
                 UPDATE sqlite_sequence SET seq = 20 WHERE name = 'outbox';",
            )
            .unwrap();
        }
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let status = crate::suite::status_of(&store, "req_old", 1).await.unwrap();
        let states: Vec<_> = status
            .messages
            .iter()
            .map(|m| (m.state, m.server_message_id.clone()))
            .collect();
        assert_eq!(
            states,
            [(State::Sent, Some("777".into())), (State::Accepted, None)]
        );
        assert_eq!(store.outbox_depth().await.unwrap(), 1);
        let due = crate::suite::claim(&store, 10, 60_000, 10).await;
        assert_eq!(
            (
                due.len(),
                due[0].id,
                due[0]
                    .content
                    .text()
                    .map(tiktok_dm_store::MessageText::as_str)
            ),
            (1, 7, Some("second"))
        );
        let mut r = crate::suite::request("req_new", 1, None, &[Kind::Text]);
        r.claim_first_ms = Some(60_000);
        let tiktok_dm_store::Enqueued::Accepted {
            claimed: Some(m), ..
        } = store.enqueue(r, &[], 10).await.unwrap()
        else {
            panic!("not accepted and claimed");
        };
        assert_eq!(m.id, 21, "ids continue after the old sequence");
        let db = rusqlite::Connection::open(&path).unwrap();
        let mut content = db.prepare(crate::suite::OUTBOX_CONTENT).unwrap();
        let texts: Vec<String> = content
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            texts,
            ["req_new:0:hello:-", "req_old:0:-:-", "req_old:1:second:-"],
            "migration 8 clears the text of a message already final, not of one pending"
        );
        let old_key = store.list_api_keys().await.unwrap().remove(0);
        assert!(
            old_key.any_account && old_key.accounts.is_empty(),
            "a key made unbound before keys had accounts keeps every account: {old_key:?}"
        );
        assert_eq!(user_version(&path), LAST_MIGRATION);
    }

    /// A row that does not read back as a message (edited by hand, or a kind
    /// this version does not know) is claimed as corrupt, with its reason,
    /// and does not stop the rows after it; the column takes any kind, so a
    /// new kind needs no table rebuild.
    #[tokio::test]
    async fn a_corrupt_row_is_claimed_as_corrupt_and_the_others_still_go() {
        use tiktok_dm_store::{Claimed, Kind, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "k", None).await;
        for id in ["bad_target", "bad_kind", "bad_id", "good"] {
            let r = crate::suite::request(id, key.id, None, &[Kind::Text]);
            store.enqueue(r, &[], 10).await.unwrap();
        }
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "UPDATE requests SET conversation_short_id = 0 WHERE id = 'bad_target';
             UPDATE outbox SET kind = 'sticker' WHERE request_id = 'bad_kind';
             UPDATE outbox SET client_message_id = 'c-1' WHERE request_id = 'bad_id';",
        )
        .unwrap();
        let claimed: Vec<Claimed> = crate::suite::claim_all(&store, 20, 60_000, 10).await;
        let why: Vec<(String, String)> = claimed
            .iter()
            .filter_map(|c| c.as_ref().err())
            .map(|c| (c.request_id.clone(), c.why.clone()))
            .collect();
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(
            why[0]
                .1
                .contains("conversation short id must be greater than zero"),
            "{why:?}"
        );
        assert!(why[1].1.contains("message kind \"sticker\""), "{why:?}");
        assert!(why[2].1.contains("client message id \"c-1\""), "{why:?}");
        let good: Vec<_> = claimed.iter().filter_map(|c| c.as_ref().ok()).collect();
        assert_eq!((good.len(), good[0].request_id.as_str()), (1, "good"));
    }

    /// Frames written to the WAL reach the database file soon after, well
    /// before the writer's own checkpoint (1,000 frames) would copy them: the
    /// background checkpoint thread does it.
    #[tokio::test]
    async fn the_wal_is_copied_back_in_the_background() {
        use tiktok_dm_store::{Kind, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "k", None).await;
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        for i in 0..40 {
            let mut r = crate::suite::request(&format!("r{i}"), key.id, None, &[Kind::Image]);
            r.messages[0].content = tiktok_dm_store::Content::Image(vec![7; 3000]);
            store.enqueue(r, &[], 10).await.unwrap();
        }
        let mut after = size();
        for _ in 0..100 {
            if after >= before + 100_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            after = size();
        }
        assert!(
            after >= before + 100_000,
            "database file {before} -> {after} bytes"
        );
    }

    /// While sends keep coming one at a time, the WAL keeps starting over
    /// from its beginning (the writer checkpoints between operations once the
    /// WAL passes 1,000 frames), so it is overwritten rather than appended to
    /// and stays short. Without those checkpoints (SQLite's own one in the
    /// writer is only a safety net at 20,000 frames) these sends leave a WAL of
    /// about 7,000 frames, near 30 MB.
    #[tokio::test]
    async fn the_wal_starts_over_while_sends_keep_coming() {
        use tiktok_dm_store::{Kind, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let wal = dir.path().join("gateway.sqlite-wal");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "k", None).await;
        let mut longest = 0;
        for i in 0..600 {
            let mut r = crate::suite::request(&format!("r{i}"), key.id, None, &[Kind::Image]);
            r.messages[0].content = tiktok_dm_store::Content::Image(vec![7; 12_000]);
            store.enqueue(r, &[], 10).await.unwrap();
            longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let written = std::fs::metadata(&path).unwrap().len() + longest;
        assert!(
            written > 7_000_000 && longest > 0,
            "the sends wrote {written} bytes, too few to show anything"
        );
        assert!(longest < 16_000_000, "the WAL grew to {longest} bytes");
    }

    /// Two processes on one file (a second gateway, or `tiktok-dm keys create`
    /// while `serve` runs): each opens its own store, and every write of both
    /// waits for the other's instead of failing with "database is locked".
    #[tokio::test]
    async fn two_stores_on_one_file_open_and_write_at_once_without_refusals() {
        use tiktok_dm_store::{Kind, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let url = path.to_str().unwrap();
        let (a, b) = tokio::join!(SqliteStore::open(url), SqliteStore::open(url));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(user_version(&path), user_version(&path));
        let key = crate::suite::new_key(&a, "shared", None).await;
        let writes = |store: SqliteStore, side: &'static str| {
            tokio::spawn(async move {
                let mut refused = Vec::new();
                for i in 0..150 {
                    let r =
                        crate::suite::request(&format!("{side}{i}"), key.id, None, &[Kind::Text]);
                    if let Err(e) = store.enqueue(r, &[], 1_000 + i).await {
                        refused.push(e.to_string());
                    }
                    if let Err(e) = crate::suite::try_claim(&store, 2_000_000, 60_000, 4).await {
                        refused.push(e.to_string());
                    }
                }
                refused
            })
        };
        let (from_a, from_b) = tokio::join!(writes(a.clone(), "a"), writes(b.clone(), "b"));
        let refused = [from_a.unwrap(), from_b.unwrap()].concat();
        assert!(
            refused.is_empty(),
            "{} refused: {:?}",
            refused.len(),
            refused.first()
        );
        let db = rusqlite::Connection::open(&path).unwrap();
        let (rows, claimed): (i64, i64) = db
            .query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'sending') FROM outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, claimed), (300, 300), "each row claimed once");
    }

    /// The database file, and the -wal and -shm files SQLite makes beside it,
    /// are created readable by their owner alone, whatever the umask lets
    /// through: they hold message texts until the messages are final.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_files_are_created_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        use tiktok_dm_store::{Kind, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "k", None).await;
        let r = crate::suite::request("r", key.id, None, &[Kind::Text]);
        store.enqueue(r, &[], 10).await.unwrap();
        for name in ["gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {:o}", mode & 0o777);
        }
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_or_cannot_be_created_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("notes.txt");
        std::fs::write(&garbage, "these are not the tables you are looking for").unwrap();
        let e = SqliteStore::open(garbage.to_str().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "database error: file is not a database");
        let missing = dir.path().join("no/such/dir/db.sqlite");
        let e = SqliteStore::open(missing.to_str().unwrap())
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("database error: unable to open database file"),
            "{e}"
        );
        let e = SqliteStore::open("sqlite::memory:").await.unwrap_err();
        assert!(e.to_string().contains("needs a database file"), "{e}");
    }
}
