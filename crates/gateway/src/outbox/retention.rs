//! Retention: once an hour (and at start) the worker deletes the requests
//! whose every message ended more than `retention` ago, with their messages,
//! and the day and month usage counters as old, and the events logged more
//! than `event_retention` ago. It runs on a task of its own,
//! in batches, so claims go on meanwhile and a large backlog (the first run
//! after an upgrade) never holds the database for long.

use std::time::{Duration, Instant};

use tiktok_dm_store::{Expired, Store};

/// How often the sweep runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Requests deleted per store call (one write group on SQLite).
const BATCH: u32 = 500;

/// One sweep: every batch, until a batch finds fewer than it may delete;
/// after each, a pause as long as it took, so deletions take at most about
/// half of the database's writing time while sends go on.
///
/// # Errors
/// The store: the sweep stops and runs again at its next time.
pub(super) async fn sweep<S: Store>(
    store: &S,
    retention: Duration,
    now: i64,
) -> tiktok_dm_store::Result<Expired> {
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let before = now.saturating_sub(keep_ms);
    let mut total = Expired::default();
    loop {
        let started = Instant::now();
        let batch = store.delete_expired(before, BATCH).await?;
        total.requests += batch.requests;
        total.messages += batch.messages;
        total.counters += batch.counters;
        if batch.requests < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::time::sleep(started.elapsed()).await;
    }
}

/// When the next sweep is due, and the one running.
pub(super) struct Retention {
    next: tokio::time::Instant,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Retention {
    /// The first sweep is due at once: a gateway restarted more often than
    /// hourly still sweeps.
    pub(super) fn due_now() -> Self {
        Self {
            next: tokio::time::Instant::now(),
            running: None,
        }
    }

    /// Starts a sweep on a task of its own when one is due and the last one
    /// has ended.
    pub(super) fn start_if_due<S: Store>(
        &mut self,
        store: &S,
        retention: Duration,
        event_retention: Duration,
    ) {
        let idle = self
            .running
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished);
        if idle && tokio::time::Instant::now() >= self.next {
            self.running = Some(tokio::spawn(sweep_and_report(
                store.clone(),
                retention,
                event_retention,
            )));
            self.next = tokio::time::Instant::now() + RETENTION_EVERY;
        }
    }

    /// Stops a sweep still running: each batch is atomic, and what it did not
    /// reach goes at the next start.
    pub(super) fn stop(self) {
        if let Some(sweep) = self.running {
            sweep.abort();
        }
    }
}

/// Runs a sweep, then deletes events older than `event_retention` (with
/// their webhook deliveries), and reports both.
async fn sweep_and_report<S: Store>(store: S, retention: Duration, event_retention: Duration) {
    let now = crate::now_ms();
    let keep_ms = i64::try_from(event_retention.as_millis()).unwrap_or(i64::MAX);
    match store
        .delete_expired_events(now.saturating_sub(keep_ms))
        .await
    {
        Ok(0) => {}
        Ok(events) => tracing::info!(events, "retention deleted old events"),
        Err(e) => {
            tracing::error!(error = %e, "the event retention sweep failed; it runs again in an hour")
        }
    }
    match sweep(&store, retention, now).await {
        Ok(gone) if gone != Expired::default() => tracing::info!(
            requests = gone.requests,
            messages = gone.messages,
            counters = gone.counters,
            "outbox: retention deleted finished requests"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "outbox: the retention sweep failed; it runs again in an hour");
        }
    }
}
