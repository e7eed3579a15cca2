//! A delivery's lease on its message: renewed every third of a lease while
//! the delivery runs, lost when a renewal finds the message claimed again (or
//! when no renewal got through for a whole lease), and consulted right before
//! the message is transmitted, so a delivery that lost its lease never sends
//! the message a second time beside the worker that now holds it. Outcomes
//! are written under the claim's fencing token: a stale one changes nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tiktok_dm_store::{Claim, Store};

use crate::now_ms;
use crate::state::AppState;

/// The lease a delivery holds.
pub(super) struct Lease {
    /// When it was last taken (claimed or renewed).
    since: Mutex<tokio::time::Instant>,
    /// Set when a renewal found the message no longer leased to this claim.
    lost: AtomicBool,
    /// How long a lease lasts.
    length: Duration,
}

impl Lease {
    /// A lease taken now, for `length`.
    pub(super) fn taken(length: Duration) -> Self {
        Self {
            since: Mutex::new(tokio::time::Instant::now()),
            lost: AtomicBool::new(false),
            length,
        }
    }

    /// When it was last taken.
    pub(super) fn since(&self) -> tokio::time::Instant {
        *self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the message is still this delivery's to send: no renewal said
    /// otherwise, and the last one that got through has not run out.
    pub(super) fn held(&self) -> bool {
        !self.lost.load(Ordering::Acquire)
            && tokio::time::Instant::now() < self.since() + self.length
    }

    /// Keeps renewing the lease of `claim` every third of a lease, for as
    /// long as its delivery runs (it never ends by itself). A delivery slower
    /// than a lease (a slow upload, a user's short `lease_secs`) is then not
    /// claimed and sent a second time while it is still on its way.
    pub(super) async fn keep<S: Store>(
        &self,
        state: &AppState<S>,
        claim: Claim,
    ) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(self.length / 3).await;
            let taken = tokio::time::Instant::now();
            match state
                .store
                .renew(claim, now_ms() + state.settings.lease_ms())
                .await
            {
                Ok(true) => {
                    if let Ok(mut since) = self.since.lock() {
                        *since = taken;
                    }
                }
                Ok(false) => {
                    // Another worker took it, or it ended: nothing left to hold.
                    tracing::warn!(
                        id = claim.id,
                        "outbox: a message in delivery is no longer leased here; it is not sent from here"
                    );
                    self.lost.store(true, Ordering::Release);
                    return std::future::pending().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, id = claim.id, "outbox: a lease could not be renewed");
                }
            }
        }
    }
}

/// Runs `write` (an outcome's record) again while the database is
/// unavailable, backing off from 100 ms to 5 s, until half a lease has passed
/// since the lease was last taken. A delivery whose outcome is not recorded
/// goes again once its lease runs out (with the same client message id); a
/// database that is back within seconds should not cost a second
/// transmission. A write that finds the message claimed again (its token
/// stale) changed nothing, and is logged.
pub(super) async fn while_unavailable<S, F, Fut>(
    state: &AppState<S>,
    held_since: tokio::time::Instant,
    claim: Claim,
    mut write: F,
) -> tiktok_dm_store::Result<()>
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = tiktok_dm_store::Result<bool>>,
{
    let deadline = held_since + state.settings.lease / 2;
    let mut wait = Duration::from_millis(100);
    loop {
        match write().await {
            Err(tiktok_dm_store::Error::Unavailable(why))
                if tokio::time::Instant::now() + wait < deadline =>
            {
                tracing::warn!(error = %why, retry_in = ?wait, "outbox: the database is unavailable; recording the outcome again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Ok(false) => {
                tracing::warn!(
                    id = claim.id,
                    "outbox: an outcome was not recorded: the message was claimed again elsewhere"
                );
                return Ok(());
            }
            other => return other.map(drop),
        }
    }
}
