//! Sent messages recorded in groups: a task per store owns a connection and
//! marks whatever waits (up to [`MAX_BATCH`]) `sent` in one statement (its own
//! transaction: one commit for the group), each row under its claim's token,
//! wiping a request's session once none of its messages is pending. Each
//! caller hears whether its claim was still the row's. Other processes hear
//! the requests (`notices.rs`; ids 100 to a notification, well under its
//! 8,000-byte bound). Should the statement
//! fail, each mark is made alone (`writes::mark_sent`).

use std::collections::HashSet;

use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use crate::error::{Error, Result};
use crate::types::Claim;

/// Marks per statement, at most.
const MAX_BATCH: usize = 512;

/// A message to mark sent.
struct Job {
    claim: Claim,
    server_message_id: String,
    transport: String,
    now: i64,
    reply: oneshot::Sender<Result<bool>>,
}

/// The handle every clone of the store shares; the task ends with the last.
#[derive(Clone, Debug)]
pub(super) struct SentBatcher {
    tx: mpsc::Sender<Job>,
}

impl SentBatcher {
    /// Starts the task, whose connection comes from `pool`.
    pub(super) fn start(pool: Pool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Marks the claimed message sent in the next group; whether the claim
    /// was still the row's.
    pub(super) async fn mark_sent(
        &self,
        (claim, server_message_id, transport, now): (Claim, &str, &str, i64),
    ) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            claim,
            server_message_id: server_message_id.to_owned(),
            transport: transport.to_owned(),
            now,
            reply,
        };
        self.tx.send(job).await.map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>) {
    let mut conn: Option<Object> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match pool.get().await {
                Ok(c) => c,
                Err(_) => {
                    batch.into_iter().for_each(|job| spawn_alone(&pool, job));
                    continue;
                }
            },
        };
        match mark(&c, &batch).await {
            Ok(applied) => {
                for job in batch {
                    let _ = job
                        .reply
                        .send(Ok(applied.contains(&(job.claim.id, job.claim.token))));
                }
                conn = Some(c);
            }
            Err(e) => {
                tracing::warn!(error = %e, n = batch.len(), "store: a group of sent marks failed; each goes alone");
                drop(Object::take(c));
                batch.into_iter().for_each(|job| spawn_alone(&pool, job));
            }
        }
    }
}

/// The group's statement: the claims (id, token) it applied; a stale claim
/// of a row marked in the same group under its current one is not among them.
/// `d` is `MATERIALIZED`: with the outbox's estimates out of date (a queue
/// table's are), the planner was seen to join it as the inner side of a
/// nested loop, unnesting the arrays again for each row (~50 ms a group of
/// 273 under a backlog).
async fn mark(c: &Object, batch: &[Job]) -> Result<HashSet<(i64, i64)>> {
    let s = c
        .prepare_cached(
            "WITH d AS MATERIALIZED (
                SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
                  AS d(id, token, server_message_id, transport, now)
             ), sent AS (
                UPDATE outbox o SET state = 'sent', server_message_id = d.server_message_id, transport = d.transport,
                                    error = NULL, locked_until = NULL, text = NULL, image = NULL, updated_at = d.now
                FROM d WHERE o.id = d.id AND o.claim_token = d.token AND o.state = 'sending'
                RETURNING o.id, o.claim_token, o.request_id
             ), wiped AS (
                UPDATE requests SET session_sealed = NULL
                WHERE id IN (SELECT request_id FROM sent)
                  AND session_sealed IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = requests.id
                                  AND o.id NOT IN (SELECT id FROM sent) AND o.state IN ('accepted', 'sending'))
             ), told AS (
                SELECT pg_notify('tiktok_dm_outcomes', string_agg(request_id, ','))
                FROM (SELECT request_id, (row_number() OVER ()) / 100 AS part FROM sent) p GROUP BY part
             )
             SELECT id, claim_token FROM sent, (SELECT count(*) FROM told) t",
        )
        .await?;
    let ids: Vec<i64> = batch.iter().map(|j| j.claim.id).collect();
    let tokens: Vec<i64> = batch.iter().map(|j| j.claim.token).collect();
    let server_ids: Vec<&str> = batch.iter().map(|j| j.server_message_id.as_str()).collect();
    let transports: Vec<&str> = batch.iter().map(|j| j.transport.as_str()).collect();
    let nows: Vec<i64> = batch.iter().map(|j| j.now).collect();
    let params: [&(dyn ToSql + Sync); 5] = [&ids, &tokens, &server_ids, &transports, &nows];
    let mut applied = HashSet::with_capacity(batch.len());
    for row in c.query(&s, &params).await? {
        applied.insert((row.try_get(0)?, row.try_get(1)?));
    }
    Ok(applied)
}

/// Makes `job`'s mark alone, in a task of its own, and answers it.
fn spawn_alone(pool: &Pool, job: Job) {
    let pool = pool.clone();
    tokio::spawn(async move {
        let answer = async {
            let c = pool.get().await?;
            let sent = (
                job.claim,
                job.server_message_id.as_str(),
                job.transport.as_str(),
                job.now,
            );
            super::writes::mark_sent(&c, sent).await
        }
        .await;
        let _ = job.reply.send(answer);
    });
}
