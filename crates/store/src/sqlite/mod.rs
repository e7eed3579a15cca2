//! The SQLite backend: one file, WAL journal, migrations embedded in the binary.
//! SQLite has no `SKIP LOCKED`, so every write goes through one writer thread
//! that commits in groups (`writer.rs`), and claimed rows carry a lease
//! (`locked_until`). Reads run on a few read-only connections beside it (WAL lets
//! them), in the calling task.
//!
//! rusqlite rather than an async driver: statements run in the calling thread
//! with cached prepared statements (a few microseconds each), where an async
//! SQLite driver sends every statement to a connection thread and back; the
//! writer is the gateway's one serial section, so that difference is its
//! throughput.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use crate::Store;
use crate::columns::delivery_error_column;
use crate::counters::count;
use crate::error::{Error, Result};
use crate::events::EXPIRED_EVENTS_BATCH;
use crate::events::*;
use crate::lanes::*;
use crate::types::*;
use crate::webhooks::*;
use lanes::LaneOp;
use reads::{read_status, read_totals};

mod accounts;
mod checkpointer;
mod events;
mod lanes;
mod meta;
mod outcomes;
mod reads;
mod retention;
mod webhooks;
mod writer;

use accounts::AccountOp;
use outcomes::OutcomeOp;
use webhooks::WebhookOp;
use writer::{Done, Op, Writer};

/// The migrations, compiled into the binary so an installed `tiktok-dm` needs
/// no files. Applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_usage.sql")),
    (3, include_str!("../../migrations/sqlite/0003_counters.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_lean_outbox.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_open_kinds.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_claim_token.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_key_accounts.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_retention.sql"),
    ),
    (9, include_str!("../../migrations/sqlite/0009_events.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_listening.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_webhooks.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_inbox_type.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_webhook_queues.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_ownership.sql"),
    ),
];

const READERS: usize = 4;

/// The SQLite store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    readers: Arc<Readers>,
    writer: Writer,
}

#[derive(Debug)]
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

/// The file a `sqlite://path`, `sqlite:path` or plain path names.
fn file_of(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(Error::Migration(
            "the store needs a database file, not an in-memory database".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// Switches the file to WAL. SQLite answers "busy" at once, without waiting
/// out the busy timeout, while another connection migrates a new file (the
/// switch needs a lock that connection holds); so it is tried again, for as
/// long as a busy timeout would wait.
fn use_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Creates the database file, when there is none, readable and writable by
/// its owner alone: it holds message texts until they are final. SQLite gives
/// the `-wal` and `-shm` files it makes beside it the same mode. A file that
/// exists keeps its mode (a warning says when others may read it). Errors
/// are left to SQLite's open, which names them.
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mode = match created {
            Ok(_) => return,
            Err(_) => std::fs::metadata(path).map_or(0, |m| m.permissions().mode()),
        };
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the database file may be read by other users; run chmod 600 on it and its -wal and -shm files"
            );
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    use_wal(conn)?;
    // What a migration clears is overwritten in its page (see the writer).
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // The write lock comes first and the version is read under it: two
    // processes opening a new file at once would otherwise both see version 0
    // and the second would fail on tables the first had just made.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // Databases made by 0.1 before this runner recorded migrations in sqlx's table.
    if version == 0 {
        let legacy: Option<i64> = tx
            .query_row(
                "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap_or(None)
            .flatten();
        if let Some(v) = legacy {
            version = v;
            tx.pragma_update(None, "user_version", v)?;
        }
    }
    for (n, sql) in MIGRATIONS {
        if *n <= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| Error::Migration(format!("migration {n}: {e}")))?;
        tx.pragma_update(None, "user_version", n)?;
    }
    tx.commit()?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, or a
    /// plain path) and applies the migrations.
    ///
    /// Commits that accept something are `synchronous = FULL`: an answer that
    /// says "accepted" means the rows survive a power cut, not only a crash.
    /// Group commit (see `writer`) pays that fsync once per group.
    ///
    /// # Errors
    /// The file cannot be opened or a migration fails.
    pub async fn open(url: &str) -> Result<Self> {
        let path = file_of(url)?;
        tokio::task::spawn_blocking(move || {
            create_private(&path);
            let mut conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            migrate(&mut conn)?;
            drop(conn);
            let writer = Writer::start(&path)?;
            let conns = (0..READERS)
                .map(|_| open_reader(&path).map(Mutex::new))
                .collect::<Result<Vec<_>>>()?;
            Ok(Self {
                readers: Arc::new(Readers {
                    conns,
                    next: AtomicUsize::new(0),
                }),
                writer,
            })
        })
        .await
        .map_err(|e| Error::Migration(format!("opening the database failed: {e}")))?
    }

    /// Runs `f` on a read connection, in the calling task. A read is a few
    /// indexed lookups in pages the OS has cached (tens of microseconds), less
    /// than the two thread hand-offs a trip to the blocking pool costs; WAL
    /// readers never wait for the writer.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.read_here(f)
    }

    /// Runs `f` on a read connection in this thread.
    fn read_here<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T>,
    {
        let readers = &self.readers;
        let n = readers.conns.len();
        let first = readers.next.fetch_add(1, Ordering::Relaxed);
        // A free connection if there is one, else wait for ours.
        for i in 0..n {
            if let Ok(conn) = readers.conns[(first + i) % n].try_lock() {
                return f(&conn);
            }
        }
        let conn = readers.conns[first % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }
}

/// An API key's accounts, in order, as one column ([`ACCOUNT_SEPARATOR`]).
const KEY_ACCOUNTS: &str = "(SELECT group_concat(account, char(31)) FROM
    (SELECT account FROM api_key_accounts WHERE api_key_id = api_keys.id ORDER BY position))";

fn api_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey::stored((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    )))
}

impl Store for SqliteStore {
    fn is_shared(&self) -> bool {
        false
    }

    async fn create_api_key(&self, new: NewApiKey, now: i64) -> Result<ApiKey> {
        new.check()?;
        match self.writer.run(Op::CreateKey(new, now)).await? {
            Done::Key(k) => Ok(k),
            _ => Err(unexpected()),
        }
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        let hash = *hash;
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS}, {KEY_ACCOUNTS} FROM api_keys WHERE key_hash = ?1"
            ))?
            .query_row(params![&hash[..]], api_key)
            .optional()?)
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS}, {KEY_ACCOUNTS} FROM api_keys ORDER BY id DESC"
            ))?;
            let rows = s.query_map([], api_key)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_api_key(&self, name: &str, now: i64) -> Result<bool> {
        flag(self.writer.run(Op::RevokeKey(name.to_owned(), now)).await?)
    }

    async fn put_account(&self, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
        check("an account name", name)?;
        let op = AccountOp::Put(name.to_owned(), session_sealed.to_vec(), now);
        self.writer.run(op.into()).await.map(drop)
    }

    async fn account(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT session_sealed FROM accounts WHERE name = ?1")?
                    .query_row(params![name], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn image(&self, id: i64) -> Result<Option<Vec<u8>>> {
        // Up to 20 MB: read on the blocking pool, not in a task's thread.
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.read_here(|c| {
                Ok(c.prepare_cached("SELECT image FROM outbox WHERE id = ?1")?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?
                    .flatten())
            })
        })
        .await
        .map_err(|e| Error::Unavailable(format!("the image read did not end: {e}")))?
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        self.read(accounts::list).await
    }

    async fn remove_account(&self, name: &str) -> Result<bool> {
        let op = AccountOp::Remove(name.to_owned());
        flag(self.writer.run(op.into()).await?)
    }

    async fn set_account_listen(&self, name: &str, listen: bool) -> Result<bool> {
        let op = AccountOp::Listen(name.to_owned(), listen);
        flag(self.writer.run(op.into()).await?)
    }

    async fn set_account_status(
        &self,
        name: &str,
        status: AccountStatus,
        now: i64,
    ) -> Result<bool> {
        let op = AccountOp::Status(name.to_owned(), status, now);
        flag(self.writer.run(op.into()).await?)
    }

    async fn set_conversation_cursor(
        &self,
        account: &str,
        conversation_id: &str,
        last_server_message_id: i64,
        last_index: i64,
    ) -> Result<bool> {
        check("a conversation id", conversation_id)?;
        let op = AccountOp::Cursor {
            account: account.to_owned(),
            conversation_id: conversation_id.to_owned(),
            last_server_message_id,
            last_index,
        };
        flag(self.writer.run(op.into()).await?)
    }

    async fn conversation_cursors(&self, account: &str) -> Result<Vec<ConversationCursor>> {
        let account = account.to_owned();
        self.read(move |c| accounts::cursors(c, &account)).await
    }

    async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        request.check()?;
        match self
            .writer
            .run(Op::Enqueue(request, windows.to_vec(), now))
            .await?
        {
            Done::Enqueued(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn claim_due(&self, now: i64, scope: &ClaimScope, max: u32) -> Result<Vec<Claimed>> {
        let scope = scope.clone();
        match self
            .writer
            .run(LaneOp::Claim { now, scope, max }.into())
            .await?
        {
            Done::Claimed(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn heartbeat(&self, beat: GatewayBeat, now: i64) -> Result<Ownership> {
        match self.writer.run(LaneOp::Heartbeat(beat, now).into()).await? {
            Done::Ownership(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    async fn change_leases(&self, change: LeaseChange, now: i64) -> Result<Vec<HeldLane>> {
        match self.writer.run(LaneOp::Change(change, now).into()).await? {
            Done::Held(h) => Ok(h),
            _ => Err(unexpected()),
        }
    }

    async fn set_pace_key(&self, lane: &str, pace_key: &str) -> Result<()> {
        let op = LaneOp::PaceKey(lane.to_owned(), pace_key.to_owned());
        self.writer.run(op.into()).await.map(|_| ())
    }

    async fn push_pacing(&self, lane: &str, not_before: i64) -> Result<()> {
        let op = LaneOp::PushPace(lane.to_owned(), not_before);
        self.writer.run(op.into()).await.map(|_| ())
    }

    async fn mark_sent(
        &self,
        claim: Claim,
        server_message_id: &str,
        transport: &str,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        let op = OutcomeOp::MarkSent {
            claim,
            server_message_id: server_message_id.to_owned(),
            transport: transport.to_owned(),
            now,
            event,
        };
        recorded(self.writer.run(op.into()).await?)
    }

    async fn reschedule(
        &self,
        claim: Claim,
        next_attempt_at: i64,
        transmitted: bool,
        error: &DeliveryError,
        now: i64,
    ) -> Result<bool> {
        let op = Op::Reschedule {
            claim,
            at: next_attempt_at,
            transmitted,
            error: delivery_error_column(error),
            now,
        };
        flag(self.writer.run(op).await?)
    }

    async fn release(&self, claim: Claim, next_attempt_at: i64) -> Result<bool> {
        let op = Op::Release {
            claim,
            at: next_attempt_at,
        };
        flag(self.writer.run(op).await?)
    }

    async fn renew(&self, claim: Claim, locked_until: i64) -> Result<bool> {
        let op = Op::Renew {
            claim,
            until: locked_until,
        };
        flag(self.writer.run(op).await?)
    }

    async fn finish(
        &self,
        claim: Claim,
        state: State,
        error: &DeliveryError,
        now: i64,
        event: Option<NewEvent>,
    ) -> Result<Recorded> {
        let op = OutcomeOp::Finish {
            claim,
            state,
            error: delivery_error_column(error),
            now,
            event,
        };
        recorded(self.writer.run(op.into()).await?)
    }

    async fn snapshot(
        &self,
        request_id: Option<&str>,
        api_key_id: i64,
        windows: &[QuotaWindow],
        day_start: i64,
        month_start: i64,
    ) -> Result<Snapshot> {
        let request_id = request_id.map(str::to_owned);
        let windows = windows.to_vec();
        self.read(move |c| {
            let status = match &request_id {
                Some(id) => read_status(c, id, api_key_id)?,
                None => None,
            };
            let used = windows
                .iter()
                .map(|w| writer::window_used(c, api_key_id, w))
                .collect::<Result<Vec<_>>>()?;
            Ok(Snapshot {
                status,
                totals: read_totals(c, api_key_id, day_start, month_start)?,
                used,
            })
        })
        .await
    }

    async fn idempotent_repeat(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Enqueued>> {
        let (key, hash) = (key.to_owned(), request_hash.to_owned());
        self.read(move |c| writer::idempotent_repeat(c, api_key_id, &key, &hash))
            .await
    }

    async fn outbox_depth(&self) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM outbox WHERE state IN ('accepted', 'sending')",
                )?
                .query_row([], |r| r.get(0))?;
            Ok(count(n))
        })
        .await
    }

    async fn delete_expired(&self, before: i64, max: u32) -> Result<Expired> {
        match self.writer.run(Op::DeleteExpired { before, max }).await? {
            Done::Expired(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn append_events(&self, events: Vec<NewEvent>, now: i64) -> Result<Vec<Appended>> {
        events.iter().try_for_each(NewEvent::check)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        match self
            .writer
            .run(events::EventOp::Append(events, now).into())
            .await?
        {
            Done::Appended(a) => Ok(a),
            _ => Err(unexpected()),
        }
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let filter = filter.clone();
        self.read(move |c| events::events_after(c, after, &filter, limit))
            .await
    }

    async fn latest_event_cursor(&self) -> Result<i64> {
        self.read(events::latest_cursor).await
    }

    async fn delete_expired_events(&self, before: i64) -> Result<u64> {
        let max = EXPIRED_EVENTS_BATCH;
        let mut deleted = 0;
        loop {
            let op = events::EventOp::DeleteExpired { before, max };
            let Done::Count(n) = self.writer.run(op.into()).await? else {
                return Err(unexpected());
            };
            deleted += n;
            // A batch short of `max` was the last; each is its own writer
            // operation, so sends are not held up behind a long sweep.
            if n < u64::from(max) {
                return Ok(deleted);
            }
        }
    }

    async fn create_webhook(&self, new: NewWebhook, max_per_key: u32, now: i64) -> Result<Webhook> {
        new.check()?;
        let op = WebhookOp::Create(new, max_per_key, now);
        match self.writer.run(op.into()).await? {
            Done::Webhook(created) => created.into_result(),
            _ => Err(unexpected()),
        }
    }

    async fn webhooks_for_key(&self, key_id: i64) -> Result<Vec<Webhook>> {
        self.read(move |c| webhooks::for_key(c, key_id)).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        let id = id.to_owned();
        self.read(move |c| webhooks::by_id(c, &id)).await
    }

    async fn delete_webhook(&self, key_id: i64, id: &str) -> Result<bool> {
        let op = WebhookOp::Delete {
            key_id,
            id: id.to_owned(),
        };
        flag(self.writer.run(op.into()).await?)
    }

    async fn claim_webhook_deliveries(
        &self,
        limit: u32,
        per_webhook: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let op = WebhookOp::Claim {
            limit,
            per_webhook,
            lease_ms,
            now,
        };
        match self.writer.run(op.into()).await? {
            Done::Deliveries(d) => Ok(d),
            _ => Err(unexpected()),
        }
    }

    async fn finish_webhook_delivery(
        &self,
        claim: WebhookClaim,
        outcome: WebhookOutcome,
        now: i64,
    ) -> Result<bool> {
        let op = WebhookOp::Finish {
            claim,
            outcome,
            now,
        };
        flag(self.writer.run(op.into()).await?)
    }

    async fn replay_webhook(
        &self,
        key_id: i64,
        webhook_id: &str,
        since_cursor: i64,
        now: i64,
    ) -> Result<u64> {
        let op = WebhookOp::Replay {
            key_id,
            id: webhook_id.to_owned(),
            since: since_cursor,
            now,
        };
        match self.writer.run(op.into()).await? {
            Done::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    async fn webhook_delivery_stats(&self) -> Result<WebhookDeliveryStats> {
        self.read(webhooks::stats).await
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>> {
        self.read(meta::key_check).await
    }

    async fn put_key_check(&self, value: &[u8]) -> Result<Vec<u8>> {
        match self.writer.run(Op::PutKeyCheck(value.to_vec())).await? {
            Done::Bytes(stored) => Ok(stored),
            _ => Err(unexpected()),
        }
    }
}

fn unexpected() -> Error {
    Error::Corrupt("the writer answered an operation with another's result".into())
}

fn recorded(done: Done) -> Result<Recorded> {
    match done {
        Done::Recorded(r) => Ok(r),
        _ => Err(unexpected()),
    }
}

fn flag(done: Done) -> Result<bool> {
    match done {
        Done::Flag(b) => Ok(b),
        _ => Err(unexpected()),
    }
}
