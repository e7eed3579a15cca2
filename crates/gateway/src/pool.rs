//! Client sessions by account, reused across messages, closed when idle, and
//! the per-account pacing clock.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tiktok_dm_client::{Error as ClientError, Session};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::config::Pacing;

struct Entry {
    session: OnceCell<Session>,
    /// Listeners holding the session open: it is not closed as idle.
    pins: std::sync::atomic::AtomicUsize,
    /// Last use, and the earliest time the next send may start.
    clock: std::sync::Mutex<(Instant, Instant)>,
}

/// Sessions by pool key (`account:NAME:…` or `session:…`). Connecting happens
/// outside the map's lock, so one slow account does not hold up the others.
#[derive(Clone, Default)]
pub struct Pool {
    entries: Arc<std::sync::Mutex<HashMap<String, Arc<Entry>>>>,
}

/// Holds a pooled session open while it lives.
pub struct Pin(Arc<Entry>);

impl Drop for Pin {
    fn drop(&mut self) {
        self.0
            .pins
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The pool key of a stored account's session: its name and a digest of its
/// sealed session, so replacing the session starts a new client session (the
/// old one idles out).
pub fn account_key(name: &str, sealed: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = tiktok_dm_proto::access_key::hex(&sha2::Sha256::digest(sealed)[..8]);
    format!("account:{name}:{digest}")
}

/// The pool key of a request's own session (`X-TikTok-Session`): a digest
/// of the session, so requests with the same session share one client
/// session and nothing in the key reveals it.
pub fn request_key(session: &str) -> String {
    use sha2::Digest as _;
    let digest = tiktok_dm_proto::access_key::hex(&sha2::Sha256::digest(session.as_bytes()));
    format!("session:{digest}")
}

/// What pacing says about a send.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    /// Go after waiting this long (often zero).
    After(Duration),
    /// The account's queue is longer than a lease; try again after this long.
    Later(Duration),
}

impl Pool {
    fn entry(&self, key: &str) -> Arc<Entry> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        Arc::clone(entries.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(Entry {
                session: OnceCell::new(),
                pins: std::sync::atomic::AtomicUsize::new(0),
                clock: std::sync::Mutex::new((now, now)),
            })
        }))
    }

    /// The session for `key`, connecting with `connect` the first time.
    ///
    /// # Errors
    /// What `connect` returns; the next call tries again.
    pub async fn session<F, Fut>(&self, key: &str, connect: F) -> Result<Session, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, ClientError>>,
    {
        let entry = self.entry(key);
        let session = entry.session.get_or_try_init(connect).await?.clone();
        if let Ok(mut clock) = entry.clock.lock() {
            clock.0 = Instant::now();
        }
        Ok(session)
    }

    /// Keeps `key`'s session open, however idle, until the pin is dropped
    /// (a listener: sends and the listener share one socket per account).
    pub fn pin(&self, key: &str) -> Pin {
        let entry = self.entry(key);
        entry
            .pins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Pin(entry)
    }

    /// Reserves the next send slot of `key` under `pacing`; refuses (without
    /// reserving) when the wait would pass `horizon`.
    pub fn reserve(&self, key: &str, pacing: Pacing, horizon: Duration) -> Slot {
        if pacing == Pacing::OFF {
            return Slot::After(Duration::ZERO);
        }
        let entry = self.entry(key);
        let Ok(mut clock) = entry.clock.lock() else {
            return Slot::After(Duration::ZERO);
        };
        let now = Instant::now();
        let start = clock.1.max(now);
        let wait = start - now;
        if wait > horizon {
            return Slot::Later(wait);
        }
        let jitter_ms = u64::try_from(pacing.jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::random_range(0..=jitter_ms))
        };
        clock.1 = start + pacing.min_interval + jitter;
        Slot::After(wait)
    }

    /// Drops `key`'s session (TikTok rejected it); the next send connects anew.
    pub fn forget(&self, key: &str) {
        let removed = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        if let Some(s) = removed.as_ref().and_then(|e| e.session.get()) {
            s.close();
        }
    }

    /// Closes sessions unused for `idle` (and whose pacing slot has passed).
    pub fn close_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|_, e| {
            let pinned = e.pins.load(std::sync::atomic::Ordering::Relaxed) > 0;
            let keep = pinned
                || e.clock
                    .lock()
                    .map(|c| now.duration_since(c.0) < idle || c.1 > now)
                    .unwrap_or(true);
            if !keep {
                if let Some(s) = e.session.get() {
                    s.close();
                }
            }
            keep
        });
        before - entries.len()
    }

    /// Connected sessions.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .map(|e| e.values().filter(|e| e.session.initialized()).count())
            .unwrap_or(0)
    }

    /// Whether no session is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spaces_one_accounts_sends_and_leaves_others_alone() {
        let pool = Pool::default();
        let pacing = Pacing {
            min_interval: Duration::from_secs(2),
            jitter: Duration::ZERO,
        };
        let horizon = Duration::from_secs(5);
        assert_eq!(
            pool.reserve("a", pacing, horizon),
            Slot::After(Duration::ZERO)
        );
        let Slot::After(second) = pool.reserve("a", pacing, horizon) else {
            panic!("the second send waits");
        };
        assert!(second > Duration::from_millis(1900) && second <= Duration::from_secs(2));
        assert_eq!(
            pool.reserve("b", pacing, horizon),
            Slot::After(Duration::ZERO)
        );
        let Slot::After(third) = pool.reserve("a", pacing, horizon) else {
            panic!("4 s is within the horizon");
        };
        assert!(third > Duration::from_millis(3900));
        // The next would start 6 s out, past the horizon: refused, and nothing
        // reserved (asking again gives the same answer).
        for _ in 0..2 {
            assert!(matches!(
                pool.reserve("a", pacing, horizon),
                Slot::Later(w) if w > Duration::from_millis(5900) && w <= Duration::from_secs(6)
            ));
        }
        assert_eq!(
            pool.reserve("a", Pacing::OFF, horizon),
            Slot::After(Duration::ZERO)
        );
    }

    #[test]
    fn jitter_adds_up_to_its_bound() {
        let pool = Pool::default();
        let pacing = Pacing {
            min_interval: Duration::from_millis(100),
            jitter: Duration::from_millis(50),
        };
        let horizon = Duration::from_secs(60);
        let mut last = Duration::ZERO;
        for i in 0..20u32 {
            let Slot::After(wait) = pool.reserve("a", pacing, horizon) else {
                panic!("within the horizon");
            };
            assert!(wait >= last, "slots only move forward");
            assert!(wait <= Duration::from_millis(150) * i + Duration::from_millis(5));
            last = wait;
        }
        assert!(last >= Duration::from_millis(100) * 19);
    }
}
