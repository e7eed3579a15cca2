//! Listening: one listening session per stored account whose `listen` is on
//! and whose session works, each logging what it hears in the event log.
//!
//! The supervisor rescans the stored accounts every [`RESCAN`]: it starts a
//! listener for an account that wants one and whose lane this gateway holds
//! (see [`crate::ownership`]), stops the listener of an account
//! removed, switched off or given a new session (which then starts again on
//! the new one), and restarts a listener that ended, after a backoff. A
//! listener shares its account's pooled session with deliveries: one socket
//! per account.

mod listen;

use std::collections::HashMap;
use std::time::Duration;

use tiktok_dm_store::{AccountStatus, Store, account_lane};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::state::AppState;

/// How often the stored accounts are read again.
pub const RESCAN: Duration = Duration::from_secs(2);
/// The longest wait before a listener that ended is started again.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(300);
/// A listener that ran this long before ending counts as healthy: its
/// backoff starts again from the first step.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

pub use listen::{public_payload, without_image_key};

struct Running {
    /// The account's `updated_at` when it started: a new session changes it.
    updated_at: i64,
    task: JoinHandle<()>,
    /// How many times in a row it ended soon after starting; the next start
    /// waits longer.
    failures: u32,
    /// When it last started.
    started: Instant,
    retry_at: Option<Instant>,
}

/// Runs until `stop` says so.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    if !state.settings.listen_accounts {
        return;
    }
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tick = tokio::time::interval(RESCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // Lanes changed hands: a listener starts or stops now.
            () = state.ownership.changed() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let accounts = match state.store.list_accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "listening: the stored accounts cannot be read");
                continue;
            }
        };
        let expired = accounts
            .iter()
            .filter(|a| a.status == AccountStatus::Expired)
            .count();
        state
            .metrics
            .inbound
            .accounts_expired
            .set(i64::try_from(expired).unwrap_or(i64::MAX));
        // Only the gateway holding an account's lane listens for it; one
        // that should hold it takes it now rather than at the next tick.
        for a in accounts
            .iter()
            .filter(|a| a.listen && a.status == AccountStatus::Active)
        {
            crate::ownership::adopt(&state, &account_lane(&a.name)).await;
        }
        let now = crate::now_ms();
        let wanted: HashMap<String, i64> = accounts
            .into_iter()
            .filter(|a| a.listen && a.status == AccountStatus::Active)
            .filter(|a| state.ownership.owns(&account_lane(&a.name), now))
            .map(|a| (a.name, a.updated_at))
            .collect();
        reconcile(&state, &mut running, &wanted);
        let listening = running.values().filter(|r| !r.task.is_finished()).count();
        state
            .metrics
            .inbound
            .listening
            .set(i64::try_from(listening).unwrap_or(i64::MAX));
    }
    for (_, r) in running {
        r.task.abort();
    }
}

/// Stops what is no longer wanted, and starts (or restarts, after its
/// backoff) what is.
fn reconcile<S: Store>(
    state: &AppState<S>,
    running: &mut HashMap<String, Running>,
    wanted: &HashMap<String, i64>,
) {
    running.retain(|name, r| {
        let keep = wanted.get(name) == Some(&r.updated_at);
        if !keep {
            r.task.abort();
        }
        keep
    });
    let now = Instant::now();
    for (name, updated_at) in wanted {
        match running.get_mut(name) {
            None => {
                let task = tokio::spawn(listen::account(state.clone(), name.clone()));
                running.insert(
                    name.clone(),
                    Running {
                        updated_at: *updated_at,
                        task,
                        failures: 0,
                        started: now,
                        retry_at: None,
                    },
                );
            }
            Some(r) if r.task.is_finished() => match r.retry_at {
                None => {
                    // A listener that ran a while before it ended starts
                    // again soon, like a first failure.
                    if now.duration_since(r.started) > HEALTHY_RUN {
                        r.failures = 0;
                    }
                    r.failures = r.failures.saturating_add(1);
                    let delay = tiktok_dm_client::backoff::full_jitter(
                        r.failures,
                        Duration::from_secs(1),
                        MAX_RESTART_DELAY,
                        rand::random(),
                    );
                    r.retry_at = Some(now + delay);
                }
                Some(at) if at <= now => {
                    r.task = tokio::spawn(listen::account(state.clone(), name.clone()));
                    r.started = now;
                    r.retry_at = None;
                }
                Some(_) => {}
            },
            Some(_) => {}
        }
    }
}
