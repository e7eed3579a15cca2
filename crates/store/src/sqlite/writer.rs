//! The one writer: every change goes through a task that owns the write
//! connection and commits in groups. It takes one operation, then whatever else
//! is already waiting (up to [`MAX_BATCH`]), runs each in its own savepoint
//! inside one transaction, commits once (one fsync for the group), and only then
//! answers each caller. A caller therefore never hears "done" before its change
//! is durable, and a failing operation rolls back alone.

use sqlx::{Connection as _, Row as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::types::*;

/// Operations per transaction, at most.
pub(crate) const MAX_BATCH: usize = 512;

const DAY_MS: i64 = 86_400_000;

/// A change to make.
pub(crate) enum Op {
    CreateKey(NewApiKey, i64),
    RevokeKey(String, i64),
    PutAccount(String, Vec<u8>, i64),
    RemoveAccount(String),
    Enqueue(NewRequest, Vec<QuotaWindow>, i64),
    Claim {
        now: i64,
        lease_ms: i64,
        max: u32,
    },
    MarkSent {
        id: i64,
        server_message_id: String,
        transport: String,
        now: i64,
    },
    Reschedule {
        id: i64,
        at: i64,
        error: String,
        now: i64,
    },
    Release {
        id: i64,
        at: i64,
    },
    Finish {
        id: i64,
        state: State,
        error: String,
        now: i64,
    },
}

/// What an operation gives back.
pub(crate) enum Done {
    Key(ApiKey),
    Flag(bool),
    Unit,
    Enqueued(Enqueued),
    Claimed(Vec<OutboxMessage>),
}

type Reply = oneshot::Sender<Result<Done>>;

/// The handle every clone of the store shares.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<(Op, Reply)>,
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub(crate) fn start(conn: SqliteConnection) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, rx));
        Self { tx }
    }

    /// Runs `op` in the next group and waits for its commit.
    pub(crate) async fn run(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<(Op, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcomes = apply_group(&mut conn, &mut batch).await;
        match outcomes {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store: a write group failed to commit");
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(Error::Commit(message.clone())));
                }
            }
        }
    }
}

/// One transaction for the whole group; a savepoint per operation.
async fn apply_group(
    conn: &mut SqliteConnection,
    batch: &mut [(Op, Reply)],
) -> Result<Vec<Result<Done>>> {
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (op, _) in batch.iter_mut() {
        let op = std::mem::replace(op, Op::RemoveAccount(String::new()));
        let mut sp = tx.begin().await?;
        match apply(&mut sp, op).await {
            Ok(done) => {
                sp.commit().await?;
                results.push(Ok(done));
            }
            Err(e) => {
                sp.rollback().await?;
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply(c: &mut SqliteConnection, op: Op) -> Result<Done> {
    match op {
        Op::CreateKey(new, now) => create_key(c, new, now).await.map(Done::Key),
        Op::RevokeKey(name, now) => {
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(name)
            .execute(&mut *c)
            .await?;
            Ok(Done::Flag(done.rows_affected() == 1))
        }
        Op::PutAccount(name, sealed, now) => {
            sqlx::query(
                "INSERT INTO accounts (name, session_sealed, created_at, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE SET session_sealed = excluded.session_sealed, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(sealed)
            .bind(now)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(Done::Unit)
        }
        Op::RemoveAccount(name) => {
            let done = sqlx::query("DELETE FROM accounts WHERE name = ?")
                .bind(name)
                .execute(&mut *c)
                .await?;
            Ok(Done::Flag(done.rows_affected() == 1))
        }
        Op::Enqueue(request, windows, now) => {
            enqueue(c, request, &windows, now).await.map(Done::Enqueued)
        }
        Op::Claim { now, lease_ms, max } => claim(c, now, lease_ms, max).await.map(Done::Claimed),
        Op::MarkSent {
            id,
            server_message_id,
            transport,
            now,
        } => {
            sqlx::query("UPDATE outbox SET state = 'sent', server_message_id = ?, transport = ?, error = NULL, locked_until = NULL, image = NULL, updated_at = ? WHERE id = ?")
                .bind(server_message_id)
                .bind(transport)
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?;
            wipe_session_if_final(c, id).await?;
            Ok(Done::Unit)
        }
        Op::Reschedule { id, at, error, now } => {
            sqlx::query("UPDATE outbox SET state = 'accepted', next_attempt_at = ?, error = ?, locked_until = NULL, updated_at = ? WHERE id = ?")
                .bind(at)
                .bind(error)
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(Done::Unit)
        }
        Op::Release { id, at } => {
            sqlx::query("UPDATE outbox SET state = 'accepted', next_attempt_at = ?, attempts = MAX(attempts - 1, 0), locked_until = NULL WHERE id = ? AND state = 'sending'")
                .bind(at)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(Done::Unit)
        }
        Op::Finish {
            id,
            state,
            error,
            now,
        } => finish(c, id, state, error, now).await.map(|()| Done::Unit),
    }
}

async fn create_key(c: &mut SqliteConnection, new: NewApiKey, now: i64) -> Result<ApiKey> {
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
    .execute(&mut *c)
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

/// The counter period a quota window reads.
pub(crate) fn period_of(window: &QuotaWindow) -> &'static str {
    if window.name == "monthly" {
        "month"
    } else {
        "day"
    }
}

async fn enqueue(
    c: &mut SqliteConnection,
    request: NewRequest,
    windows: &[QuotaWindow],
    now: i64,
) -> Result<Enqueued> {
    if let Some(key) = &request.idempotency_key {
        let existing = sqlx::query(
            "SELECT id, request_hash FROM requests WHERE api_key_id = ? AND idempotency_key = ?",
        )
        .bind(request.api_key_id)
        .bind(key)
        .fetch_optional(&mut *c)
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
        let used = counter(c, request.api_key_id, period_of(w), w.start).await?;
        if used + wanted > w.limit {
            return Ok(Enqueued::QuotaExceeded {
                window: w.name,
                limit: w.limit,
                used,
                resets_at: w.resets_at,
            });
        }
    }
    let day_start = now - now.rem_euclid(DAY_MS);
    let month_start: i64 = sqlx::query_scalar(
        "SELECT CAST(strftime('%s', ? / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000",
    )
    .bind(now)
    .fetch_one(&mut *c)
    .await?;
    sqlx::query(
        "INSERT INTO requests (id, api_key_id, idempotency_key, request_hash, account, session_sealed, conversation_id, conversation_short_id, created_at, day_start, month_start)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(day_start)
    .bind(month_start)
    .execute(&mut *c)
    .await?;
    let mut image_bytes = 0i64;
    for (position, m) in request.messages.iter().enumerate() {
        let bytes = m.image.as_ref().map_or(0, |i| i.len() as i64);
        image_bytes += bytes;
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
        .bind(bytes)
        // A later message waits for the one before it (see claim).
        .bind(now)
        .bind(request.api_key_id)
        .bind(now)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    let count = i64::try_from(wanted).unwrap_or(i64::MAX);
    for (period, start) in [("day", day_start), ("month", month_start), ("all", 0)] {
        bump(c, request.api_key_id, period, start, count, image_bytes).await?;
    }
    Ok(Enqueued::Accepted {
        request_id: request.id,
    })
}

/// Messages counted in one counter.
pub(crate) async fn counter(
    c: &mut SqliteConnection,
    api_key_id: i64,
    period: &str,
    start: i64,
) -> Result<u64> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT messages FROM usage_counters WHERE api_key_id = ? AND period = ? AND start = ?",
    )
    .bind(api_key_id)
    .bind(period)
    .bind(start)
    .fetch_optional(&mut *c)
    .await?;
    Ok(used.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

async fn bump(
    c: &mut SqliteConnection,
    api_key_id: i64,
    period: &str,
    start: i64,
    messages: i64,
    image_bytes: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (api_key_id, period, start) DO UPDATE SET
            messages = messages + excluded.messages,
            image_bytes = image_bytes + excluded.image_bytes",
    )
    .bind(api_key_id)
    .bind(period)
    .bind(start)
    .bind(messages)
    .bind(image_bytes)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn claim(
    c: &mut SqliteConnection,
    now: i64,
    lease_ms: i64,
    max: u32,
) -> Result<Vec<OutboxMessage>> {
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
    .fetch_all(&mut *c)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        sqlx::query("UPDATE outbox SET state = 'sending', locked_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?")
            .bind(now + lease_ms)
            .bind(now)
            .bind(id)
            .execute(&mut *c)
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
    Ok(claimed)
}

async fn finish(
    c: &mut SqliteConnection,
    id: i64,
    state: State,
    error: String,
    now: i64,
) -> Result<()> {
    let Some(row) = sqlx::query(
        "SELECT o.request_id, o.position, o.api_key_id, o.image_bytes, o.state, r.day_start, r.month_start
         FROM outbox o JOIN requests r ON r.id = o.request_id WHERE o.id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(());
    };
    let request_id: String = row.try_get("request_id")?;
    let position: i64 = row.try_get("position")?;
    let api_key_id: i64 = row.try_get("api_key_id")?;
    let was: String = row.try_get("state")?;
    if State::parse(&was)?.is_final() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET state = ?, error = ?, locked_until = NULL, image = NULL, updated_at = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(&error)
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await?;
    // Failed messages give their quota back; `unknown` ones keep it (they may
    // have been delivered).
    let (mut given_back, mut bytes_back) = if state == State::Failed {
        (1i64, row.try_get::<i64, _>("image_bytes")?)
    } else {
        (0, 0)
    };
    // A message that failed (or may have been sent) ends its request: the
    // messages after it will not be attempted, and give their quota back too.
    if state != State::Sent {
        let later = sqlx::query(
            "UPDATE outbox SET state = 'failed', error = ?, image = NULL, updated_at = ?
             WHERE request_id = ? AND position > ? AND state = 'accepted'
             RETURNING image_bytes",
        )
        .bind(serde_json::json!({"code": "not_attempted", "message": "an earlier message of this request was not delivered"}).to_string())
        .bind(now)
        .bind(&request_id)
        .bind(position)
        .fetch_all(&mut *c)
        .await?;
        for r in &later {
            given_back += 1;
            bytes_back += r.try_get::<i64, _>("image_bytes")?;
        }
    }
    if given_back > 0 {
        let starts = [
            ("day", row.try_get::<i64, _>("day_start")?),
            ("month", row.try_get::<i64, _>("month_start")?),
            ("all", 0),
        ];
        for (period, start) in starts {
            sqlx::query(
                "UPDATE usage_counters SET messages = MAX(messages - ?, 0), image_bytes = MAX(image_bytes - ?, 0)
                 WHERE api_key_id = ? AND period = ? AND start = ?",
            )
            .bind(given_back)
            .bind(bytes_back)
            .bind(api_key_id)
            .bind(period)
            .bind(start)
            .execute(&mut *c)
            .await?;
        }
    }
    wipe_session_if_final(c, id).await
}

/// A per-request session is kept only while its messages are undelivered.
async fn wipe_session_if_final(c: &mut SqliteConnection, id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE requests SET session_sealed = NULL
         WHERE id = (SELECT request_id FROM outbox WHERE id = ?)
           AND session_sealed IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE request_id = requests.id AND state IN ('accepted', 'sending'))",
    )
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}
