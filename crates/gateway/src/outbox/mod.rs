//! The outbox worker: claims due messages, delivers them over pooled client
//! sessions (one per TikTok account), and records the outcome by the client
//! error's retry class. An ambiguous outcome is retried only with the same client
//! message id (the id a repeat is recognised by: the sandbox de-duplicates on
//! it, and TikTok's web client retries the same way); after a restart, rows left `sending`
//! come back when their lease expires.

use std::sync::Arc;
use std::time::Duration;

use tiktok_dm_store::{
    ClaimScope, Claimed, CorruptMessage, DeliveryError, OutboxMessage, Pace, State, Store,
};
use tokio::sync::{OwnedSemaphorePermit, watch};

mod deliver;
mod lease;
mod outcomes;
mod retention;

use crate::state::AppState;
use crate::{millis, now_ms};

/// Messages delivered at once; more wait in the outbox.
pub const MAX_IN_FLIGHT: usize = 512;
/// Messages claimed per store round trip.
const CLAIM_BATCH: usize = 128;
/// With a backlog, the room a claim waits for (up to [`GATHER`]): each claim
/// costs a store round trip and a walk of every held lane whatever its size,
/// so one for each delivery that ends (room for one) drained a backlog on
/// PostgreSQL at a quarter of the rate.
const CLAIM_ROOM: usize = 32;
/// The longest wait for [`CLAIM_ROOM`].
const GATHER: Duration = Duration::from_millis(5);

/// Room for one delivery, taken before an acceptance claims its first
/// message for delivery from the send handler: with none, the acceptance
/// leaves it to the worker's claim rather than claim it and give it back.
pub fn reserve<S: Store>(state: &AppState<S>) -> Option<OwnedSemaphorePermit> {
    Arc::clone(&state.in_flight).try_acquire_owned().ok()
}

/// Starts delivering `message` on a task of its own, holding `room` (one of
/// [`AppState::in_flight`]'s permits, from [`reserve`]) until it ends.
pub fn start<S: Store>(
    state: &AppState<S>,
    message: Box<OutboxMessage>,
    room: OwnedSemaphorePermit,
) {
    spawn_delivery(state, *message, room);
}

fn spawn_delivery<S: Store>(
    state: &AppState<S>,
    message: OutboxMessage,
    permit: OwnedSemaphorePermit,
) {
    let state = state.clone();
    tokio::spawn(async move {
        deliver::deliver(&state, message).await;
        drop(permit);
    });
}

/// Starts a claimed message's delivery once there is room, or ends a claimed
/// row that does not read back as a message.
async fn dispatch<S: Store>(state: &AppState<S>, claimed: Claimed) {
    let message = match claimed {
        Ok(message) => message,
        Err(corrupt) => return end_corrupt(state, corrupt).await,
    };
    // Send handlers may have taken the room meanwhile: wait for it.
    match Arc::clone(&state.in_flight).acquire_owned().await {
        Ok(permit) => spawn_delivery(state, message, permit),
        Err(_) => {
            // The semaphore is never closed; if it were, the message goes
            // again after its lease.
            tracing::error!("outbox: no delivery permits");
        }
    }
}

/// Ends a stored message that does not read back (edited by hand, or written
/// by a version with other kinds) as failed with the gateway's own error:
/// TikTok is not asked, and the answer says the fault is the gateway's.
async fn end_corrupt<S: Store>(state: &AppState<S>, corrupt: CorruptMessage) {
    tracing::error!(request = %corrupt.request_id, id = corrupt.id, why = %corrupt.why, "outbox: a stored message cannot be read back; it fails");
    let error = DeliveryError::Corrupt {
        message: format!(
            "the gateway cannot read back the message it stored ({})",
            corrupt.why
        ),
    };
    if let Err(e) = state
        .store
        .finish(corrupt.claim(), State::Failed, &error, now_ms(), None)
        .await
    {
        tracing::error!(error = %e, "outbox: a corrupt message could not be ended; it is claimed again after its lease");
    }
    state.waiters.wake(&corrupt.request_id);
}

/// Runs until `stop` turns true, then waits (up to 10 s) for the deliveries in
/// flight, its own and those the send handlers started; any still unfinished go
/// again after their lease, with the same ids.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let mut next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
    let mut retention = retention::Retention::due_now();
    // After a failed claim, the next waits this long (doubling up to 5 s), so a
    // database that is away is not asked (and logged) five times a second.
    let mut pause = Duration::ZERO;
    // Whether the last claim took all it asked for (more are due).
    let mut backlog = false;
    loop {
        if *stop.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_sweep {
            sweep(&state);
            next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
        }
        retention.start_if_due(
            &state.store,
            state.settings.retention,
            state.settings.event_retention,
        );
        let room = room(&state, backlog, &mut stop).await;
        if room == 0 {
            // Wait for a delivery to end.
            tokio::select! {
                permit = Arc::clone(&state.in_flight).acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let max = u32::try_from(room.min(CLAIM_BATCH)).unwrap_or(1);
        let claimed = match state.store.claim_due(now_ms(), &scope(&state), max).await {
            Ok(c) => {
                pause = Duration::ZERO;
                c
            }
            Err(e) => {
                pause = (pause * 2).clamp(CLAIM_PAUSE_FIRST, CLAIM_PAUSE_LAST);
                tracing::error!(error = %e, retry_in = ?pause, "outbox: claiming failed");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // An acceptance: the database is back.
                    () = state.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        let drained = claimed.len() < max as usize;
        backlog = !drained;
        for claimed in claimed {
            dispatch(&state, claimed).await;
        }
        if drained {
            // Nothing else was due: wait for news rather than ask again at once
            // (an empty claim would sit in the writer's queue ahead of the
            // outcomes of what was just claimed). A wake-up sent meanwhile is kept.
            tokio::select! {
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    retention.stop();
    let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
    let finished =
        tokio::time::timeout(Duration::from_secs(10), state.in_flight.acquire_many(all)).await;
    if finished.is_err() {
        tracing::warn!(
            left = MAX_IN_FLIGHT.saturating_sub(state.in_flight.available_permits()),
            "outbox: stopped with deliveries in flight; they resume after their lease"
        );
    }
}

/// Closes the sessions idle for `session_idle`, and those of lanes this
/// gateway does not hold unused for a sweep.
fn sweep<S>(state: &AppState<S>) {
    let now = now_ms();
    let own = &state.ownership;
    let closed = state.pool.close_idle(state.settings.session_idle)
        + state
            .pool
            .close_unowned(|lane| own.owns(lane, now), SWEEP_EVERY);
    if closed > 0 {
        tracing::debug!(closed, "outbox: idle sessions closed");
    }
}

/// The room for deliveries to claim into; with a backlog, after waiting up
/// to [`GATHER`] for [`CLAIM_ROOM`].
async fn room<S>(state: &AppState<S>, backlog: bool, stop: &mut watch::Receiver<bool>) -> usize {
    let room = state.in_flight.available_permits();
    if !backlog || room >= CLAIM_ROOM {
        return room;
    }
    tokio::select! {
        () = tokio::time::sleep(GATHER) => {}
        _ = stop.changed() => {}
    }
    state.in_flight.available_permits()
}

/// Who claims and how: this gateway, its lanes, the pacing (a paced message
/// may be claimed shortly before its slot, and waits for it).
pub fn scope<S>(state: &AppState<S>) -> ClaimScope {
    let pacing = state.settings.pacing;
    ClaimScope {
        gateway: state.ownership.id().to_owned(),
        lease_ms: state.settings.lease_ms(),
        pace: Pace {
            min_interval_ms: millis(pacing.min_interval),
            jitter_ms: millis(pacing.jitter),
        },
        horizon_ms: horizon_ms(state.settings.lease_ms(), pacing),
    }
}

/// How far ahead a paced message is claimed: two slots at most (so that a
/// lane moving to another gateway, or a gateway stopping, leaves few claimed
/// messages waiting), and never beyond half a lease.
fn horizon_ms(lease_ms: i64, pacing: crate::config::Pacing) -> i64 {
    let slot = millis(pacing.min_interval) + millis(pacing.jitter);
    (2 * slot).min(lease_ms / 2)
}

/// The pause after a first failed claim, and the longest.
const CLAIM_PAUSE_FIRST: Duration = Duration::from_millis(200);
const CLAIM_PAUSE_LAST: Duration = Duration::from_secs(5);

/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
