//! The SQLite backend: one file, WAL journal, migrations embedded in the binary.
//! SQLite has no `SKIP LOCKED`, so every write goes through one writer (a mutex
//! around write transactions) and claimed rows carry a lease (`locked_until`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use tokio::sync::Mutex;

use crate::Store;
use crate::error::{Error, Result};
use crate::types::*;

/// The migrations, compiled into the binary so an installed `tiktok-dm` needs no files.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "usage",
        include_str!("../migrations/sqlite/0002_usage.sql"),
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
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, or a
    /// plain path) and applies the migrations.
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
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Migrator::new(Embedded).await?.run(&pool).await?;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
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
        let _w = self.writer.lock().await;
        let result = sqlx::query(
            "INSERT INTO api_keys (name, prefix, key_hash, daily_limit, monthly_limit, account, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(&new.prefix)
        .bind(&new.key_hash[..])
        .bind(new.daily_limit.map(i64::from))
        .bind(new.monthly_limit.map(i64::from))
        .bind(&new.account)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(ApiKey {
                id: done.last_insert_rowid(),
                name: new.name,
                prefix: new.prefix,
                daily_limit: new.daily_limit,
                monthly_limit: new.monthly_limit,
                account: new.account,
                created_at: now,
                revoked_at: None,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(Error::Duplicate(format!("an API key named {:?}", new.name)))
            }
            Err(e) => Err(e.into()),
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
        let _w = self.writer.lock().await;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_account(&self, name: &str, session_sealed: &[u8], now: i64) -> Result<()> {
        let _w = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO accounts (name, session_sealed, created_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET session_sealed = excluded.session_sealed, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(session_sealed)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
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
        let _w = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM accounts WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enqueue(
        &self,
        request: NewRequest,
        windows: &[QuotaWindow],
        now: i64,
    ) -> Result<Enqueued> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &request.idempotency_key {
            let existing = sqlx::query("SELECT id, request_hash FROM requests WHERE api_key_id = ? AND idempotency_key = ?")
                .bind(request.api_key_id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let hash: String = row.try_get("request_hash")?;
                return Ok(if hash == request.request_hash {
                    Enqueued::Replay {
                        request_id: row.try_get("id")?,
                    }
                } else {
                    Enqueued::IdempotencyConflict
                });
            }
        }
        let wanted = request.messages.len() as u64;
        for w in windows {
            let used: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox WHERE api_key_id = ? AND created_at >= ? AND state != 'failed'",
            )
            .bind(request.api_key_id)
            .bind(w.start)
            .fetch_one(&mut *tx)
            .await?;
            let used = u64::try_from(used).unwrap_or(0);
            if used + wanted > w.limit {
                return Ok(Enqueued::QuotaExceeded {
                    window: w.name,
                    limit: w.limit,
                    used,
                    resets_at: w.resets_at,
                });
            }
        }
        sqlx::query(
            "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&request.id)
        .bind(request.api_key_id)
        .bind(&request.idempotency_key)
        .bind(&request.request_hash)
        .bind(&request.account)
        .bind(&request.session_sealed)
        .bind(&request.conversation_id)
        .bind(request.conversation_short_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (position, m) in request.messages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO outbox (request_id, position, kind, client_message_id, text, image, image_bytes, state, next_attempt_at, api_key_id, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?, ?)",
            )
            .bind(&request.id)
            .bind(position as i64)
            .bind(m.kind.as_str())
            .bind(&m.client_message_id)
            .bind(&m.text)
            .bind(&m.image)
            .bind(m.image.as_ref().map_or(0, |i| i.len() as i64))
            // A later message waits for the one before it (see claim_due).
            .bind(now)
            .bind(request.api_key_id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Enqueued::Accepted {
            request_id: request.id,
        })
    }

    async fn claim_due(&self, now: i64, lease_ms: i64, max: u32) -> Result<Vec<OutboxMessage>> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        // Due: accepted and its time has come, or sending with an expired lease
        // (the worker that held it died). A message waits until every earlier
        // message of its request is sent, so an image always precedes its caption.
        let rows = sqlx::query(
            "SELECT o.id, o.request_id, o.position, o.kind, o.client_message_id, o.text, o.image, o.attempts, o.api_key_id,
                    r.conversation_id, r.conversation_short_id, r.account, r.session_sealed
             FROM outbox o JOIN requests r ON r.id = o.request_id
             WHERE ((o.state = 'accepted' AND o.next_attempt_at <= ?1) OR (o.state = 'sending' AND o.locked_until < ?1))
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.position < o.position AND p.state != 'sent')
             ORDER BY o.next_attempt_at, o.id
             LIMIT ?2",
        )
        .bind(now)
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            sqlx::query("UPDATE outbox SET state = 'sending', locked_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?")
                .bind(now + lease_ms)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let kind: String = row.try_get("kind")?;
            claimed.push(OutboxMessage {
                id,
                request_id: row.try_get("request_id")?,
                position: row.try_get("position")?,
                kind: Kind::parse(&kind)?,
                client_message_id: row.try_get("client_message_id")?,
                text: row.try_get("text")?,
                image: row.try_get("image")?,
                attempts: row.try_get::<i64, _>("attempts")? + 1,
                conversation_id: row.try_get("conversation_id")?,
                conversation_short_id: row.try_get("conversation_short_id")?,
                account: row.try_get("account")?,
                session_sealed: row.try_get("session_sealed")?,
                api_key_id: row.try_get("api_key_id")?,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn mark_sent(
        &self,
        id: i64,
        server_message_id: &str,
        transport: &str,
        now: i64,
    ) -> Result<()> {
        self.settle(id, "UPDATE outbox SET state = 'sent', server_message_id = ?, transport = ?, error = NULL, locked_until = NULL, image = NULL, updated_at = ? WHERE id = ?", |q| {
            q.bind(server_message_id.to_owned()).bind(transport.to_owned()).bind(now).bind(id)
        })
        .await
    }

    async fn reschedule(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let error = error.to_string();
        self.settle(id, "UPDATE outbox SET state = 'accepted', next_attempt_at = ?, error = ?, locked_until = NULL, updated_at = ? WHERE id = ?", |q| {
            q.bind(next_attempt_at).bind(error).bind(now).bind(id)
        })
        .await
    }

    async fn release(&self, id: i64, next_attempt_at: i64) -> Result<()> {
        let _w = self.writer.lock().await;
        sqlx::query("UPDATE outbox SET state = 'accepted', next_attempt_at = ?, attempts = MAX(attempts - 1, 0), locked_until = NULL WHERE id = ? AND state = 'sending'")
            .bind(next_attempt_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish(
        &self,
        id: i64,
        state: State,
        error: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE outbox SET state = ?, error = ?, locked_until = NULL, image = NULL, updated_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(error.to_string())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // A message that failed (or may have been sent) ends its request: the
        // messages after it will not be attempted. Failing them gives their
        // quota back and makes the request final.
        if state != State::Sent {
            sqlx::query(
                "UPDATE outbox SET state = 'failed', error = ?, image = NULL, updated_at = ?
                 WHERE request_id = (SELECT request_id FROM outbox WHERE id = ?)
                   AND position > (SELECT position FROM outbox WHERE id = ?) AND state = 'accepted'",
            )
            .bind(serde_json::json!({"code": "not_attempted", "message": "an earlier message of this request was not delivered"}).to_string())
            .bind(now)
            .bind(id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        wipe_session_if_final(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
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

    async fn used_since(&self, api_key_id: i64, since: i64) -> Result<u64> {
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE api_key_id = ? AND created_at >= ? AND state != 'failed'")
            .bind(api_key_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    async fn usage_totals(
        &self,
        api_key_id: i64,
        day_start: i64,
        month_start: i64,
    ) -> Result<UsageTotals> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(created_at >= ?2), 0) AS today, COALESCE(SUM(created_at >= ?3), 0) AS month,
                    COUNT(*) AS total, COALESCE(SUM(image_bytes), 0) AS image_bytes
             FROM outbox WHERE api_key_id = ?1 AND state != 'failed'",
        )
        .bind(api_key_id)
        .bind(day_start)
        .bind(month_start)
        .fetch_one(&self.pool)
        .await?;
        let n =
            |c: &str| -> Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(c)?).unwrap_or(0)) };
        Ok(UsageTotals {
            today: n("today")?,
            month: n("month")?,
            total: n("total")?,
            image_bytes: n("image_bytes")?,
        })
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

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl SqliteStore {
    /// Runs one single-row state change and, when its request is now final,
    /// wipes the request's per-request session.
    async fn settle<'q>(
        &self,
        id: i64,
        sql: &'q str,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
    ) -> Result<()> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        bind(sqlx::query(sql)).execute(&mut *tx).await?;
        wipe_session_if_final(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A per-request session is kept only while its messages are undelivered.
async fn wipe_session_if_final(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE requests SET session_sealed = NULL
         WHERE id = (SELECT request_id FROM outbox WHERE id = ?)
           AND session_sealed IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE request_id = requests.id AND state IN ('accepted', 'sending'))",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
