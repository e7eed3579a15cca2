//! The SQLite backend: one file, WAL journal, migrations embedded in the binary.
//! SQLite has no `SKIP LOCKED`, so every write goes through one writer task that
//! commits in groups (`writer.rs`), and claimed rows carry a lease (`locked_until`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use crate::Store;
use crate::error::{Error, Result};
use crate::types::*;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

mod writer;

use writer::{Done, Op, Writer};

/// The migrations, compiled into the binary so an installed `tiktok-dm` needs no files.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "usage",
        include_str!("../../migrations/sqlite/0002_usage.sql"),
    ),
    (
        3,
        "counters",
        include_str!("../../migrations/sqlite/0003_counters.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 'static>,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The SQLite store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, or a
    /// plain path) and applies the migrations.
    ///
    /// Commits are `synchronous = FULL`: an answer that says "accepted" means the
    /// rows survive a power cut, not only a crash. Group commit (see `writer`)
    /// pays that fsync once per group.
    ///
    /// # Errors
    /// The file cannot be opened or a migration fails.
    pub async fn open(url: &str) -> Result<Self> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        Migrator::new(Embedded).await?.run(&pool).await?;
        let writer = Writer::start(sqlx::ConnectOptions::connect(&options).await?);
        Ok(Self { pool, writer })
    }
}

fn limit(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

fn api_key(row: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        daily_limit: limit(row.try_get("daily_limit")?),
        monthly_limit: limit(row.try_get("monthly_limit")?),
        account: row.try_get("account")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const KEY_COLUMNS: &str =
    "id, name, prefix, daily_limit, monthly_limit, account, created_at, revoked_at";

impl Store for SqliteStore {
    async fn create_api_key(&self, new: NewApiKey, now: i64) -> Result<ApiKey> {
        match self.writer.run(Op::CreateKey(new, now)).await? {
            Done::Key(k) => Ok(k),
            _ => Err(unexpected()),
        }
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(api_key).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_key).collect()
    }

    async fn revoke_api_key(&self, name: &str, now: i64) -> Result<bool> {
        flag(self.writer.run(Op::RevokeKey(name.to_owned(), now)).await?)
    }

    async fn put_account(&self, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
        self.writer
            .run(Op::PutAccount(
                name.to_owned(),
                session_sealed.to_vec(),
                now,
            ))
            .await
            .map(drop)
    }

    async fn account(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT session_sealed FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("session_sealed")).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountInfo {
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn remove_account(&self, name: &str) -> Result<bool> {
        flag(self.writer.run(Op::RemoveAccount(name.to_owned())).await?)
    }

    async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        match self
            .writer
            .run(Op::Enqueue(request, windows.to_vec(), now))
            .await?
        {
            Done::Enqueued(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn claim_due(&self, now: i64, lease_ms: i64, max: u32) -> Result<Vec<OutboxMessage>> {
        match self.writer.run(Op::Claim { now, lease_ms, max }).await? {
            Done::Claimed(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn mark_sent(
        &self,
        id: i64,
        server_message_id: &str,
        transport: &str,
        now: i64,
    ) -> Result<()> {
        let op = Op::MarkSent {
            id,
            server_message_id: server_message_id.to_owned(),
            transport: transport.to_owned(),
            now,
        };
        self.writer.run(op).await.map(drop)
    }

    async fn reschedule(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let op = Op::Reschedule {
            id,
            at: next_attempt_at,
            error: error.to_string(),
            now,
        };
        self.writer.run(op).await.map(drop)
    }

    async fn release(&self, id: i64, next_attempt_at: i64) -> Result<()> {
        let op = Op::Release {
            id,
            at: next_attempt_at,
        };
        self.writer.run(op).await.map(drop)
    }

    async fn finish(
        &self,
        id: i64,
        state: State,
        error: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let op = Op::Finish {
            id,
            state,
            error: error.to_string(),
            now,
        };
        self.writer.run(op).await.map(drop)
    }

    async fn request_status(
        &self,
        request_id: &str,
        api_key_id: i64,
    ) -> Result<Option<RequestStatus>> {
        let Some(request) = sqlx::query("SELECT id, created_at, session_sealed IS NOT NULL AS holds_session FROM requests WHERE id = ? AND api_key_id = ?")
            .bind(request_id)
            .bind(api_key_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT kind, client_message_id, state, server_message_id, transport, attempts, error, image_bytes FROM outbox WHERE request_id = ? ORDER BY position",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        let mut image_bytes = 0u64;
        for row in &rows {
            image_bytes += u64::try_from(row.try_get::<i64, _>("image_bytes")?).unwrap_or(0);
            let kind: String = row.try_get("kind")?;
            let state: String = row.try_get("state")?;
            let error: Option<String> = row.try_get("error")?;
            messages.push(MessageStatus {
                kind: Kind::parse(&kind)?,
                client_message_id: row.try_get("client_message_id")?,
                state: State::parse(&state)?,
                server_message_id: row.try_get("server_message_id")?,
                transport: row.try_get("transport")?,
                attempts: row.try_get("attempts")?,
                error: error.and_then(|e| serde_json::from_str(&e).ok()),
            });
        }
        Ok(Some(RequestStatus {
            id: request.try_get("id")?,
            created_at: request.try_get("created_at")?,
            holds_session: request.try_get("holds_session")?,
            image_bytes,
            messages,
        }))
    }

    async fn window_used(&self, api_key_id: i64, window: &QuotaWindow) -> Result<u64> {
        let mut c = self.pool.acquire().await?;
        writer::counter(&mut c, api_key_id, writer::period_of(window), window.start).await
    }

    async fn usage_totals(
        &self,
        api_key_id: i64,
        day_start: i64,
        month_start: i64,
    ) -> Result<UsageTotals> {
        let rows = sqlx::query(
            "SELECT period, messages, image_bytes FROM usage_counters
             WHERE api_key_id = ?1 AND ((period = 'day' AND start = ?2) OR (period = 'month' AND start = ?3) OR period = 'all')",
        )
        .bind(api_key_id)
        .bind(day_start)
        .bind(month_start)
        .fetch_all(&self.pool)
        .await?;
        let mut totals = UsageTotals::default();
        for row in &rows {
            let period: String = row.try_get("period")?;
            let n = u64::try_from(row.try_get::<i64, _>("messages")?).unwrap_or(0);
            match period.as_str() {
                "day" => totals.today = n,
                "month" => totals.month = n,
                _ => {
                    totals.total = n;
                    totals.image_bytes =
                        u64::try_from(row.try_get::<i64, _>("image_bytes")?).unwrap_or(0);
                }
            }
        }
        Ok(totals)
    }

    async fn outbox_depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('accepted', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn unexpected() -> Error {
    Error::Corrupt("the writer answered an operation with another's result".into())
}

fn flag(done: Done) -> Result<bool> {
    match done {
        Done::Flag(b) => Ok(b),
        _ => Err(unexpected()),
    }
}
