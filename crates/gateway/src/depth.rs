//! The outbox depth as `/readyz` and `/metrics` show it, counted at most once
//! a second. Counting is a `COUNT` over the outbox, which grows with the
//! backlog; scrapes (several Prometheus servers, a load balancer's probes)
//! would otherwise each run one. Scrapes that arrive while a count runs wait
//! for it and share its result; a failed count is not kept, so the next
//! scrape tries again.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a count is shown before the store is asked again.
pub const DEPTH_MAX_AGE: Duration = Duration::from_secs(1);

/// The last count and when it was taken.
#[derive(Debug, Default)]
pub struct DepthCache {
    last: Mutex<Option<(Instant, u64)>>,
}

impl DepthCache {
    /// The depth as of at most [`DEPTH_MAX_AGE`] before `now`: the last count,
    /// or a new one from `count`.
    ///
    /// # Errors
    /// The count's error, when a new count was needed and failed.
    pub async fn get<F, Fut, E>(&self, now: Instant, count: F) -> Result<u64, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, depth)) = *last {
            if now.saturating_duration_since(at) < DEPTH_MAX_AGE {
                return Ok(depth);
            }
        }
        let depth = count().await?;
        *last = Some((now, depth));
        Ok(depth)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn the_depth_is_counted_at_most_once_a_second() {
        let cache = DepthCache::default();
        let counts = AtomicU64::new(0);
        let count = || async { Ok::<_, ()>(counts.fetch_add(1, Ordering::Relaxed) + 1) };
        let t0 = Instant::now();
        assert_eq!(cache.get(t0, count).await, Ok(1));
        let within = t0 + Duration::from_millis(999);
        assert_eq!(cache.get(within, count).await, Ok(1), "shown again");
        assert_eq!(counts.load(Ordering::Relaxed), 1, "counted once");
        assert_eq!(cache.get(t0 + DEPTH_MAX_AGE, count).await, Ok(2));
        // A failed count is not kept: the next scrape counts again.
        let later = t0 + 3 * DEPTH_MAX_AGE;
        assert_eq!(
            cache.get(later, || async { Err("down") }).await,
            Err("down")
        );
        assert_eq!(cache.get(later, count).await, Ok(3));
    }
}
