//! Client sessions by account, reused across messages, closed when idle, and
//! the per-account clock that keeps one process's sends an interval apart.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tiktok_dm_client::{Error as ClientError, Session};
use tokio::sync::OnceCell;
use tokio::time::Instant;

struct Entry {
    session: OnceCell<Session>,
    /// Listeners and sends holding the session open: it is not closed as
    /// idle.
    pins: std::sync::atomic::AtomicUsize,
    /// Its lane moved to another gateway: it is out of the map, and closes
    /// when its last pin goes.
    retired: std::sync::atomic::AtomicBool,
    /// Last use, and the earliest time the next send may start.
    clock: std::sync::Mutex<(Instant, Instant)>,
    /// Held by a paced send from its pacing wait until its answer.
    turn: Arc<tokio::sync::Mutex<()>>,
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
        use std::sync::atomic::Ordering;
        let last = self.0.pins.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && self.0.retired.load(Ordering::Acquire) {
            if let Some(s) = self.0.session.get() {
                s.close();
            }
        }
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

/// The pool key of a request's own session (`X-TikTok-Session`), which is
/// also its lane: a digest of the session, so requests with the same session
/// share one client session and nothing in the key reveals it.
pub fn request_key(session: &str) -> String {
    use sha2::Digest as _;
    let digest = tiktok_dm_proto::access_key::hex(&sha2::Sha256::digest(session.as_bytes()));
    tiktok_dm_store::session_lane(&digest)
}

/// The lane a pool key's session delivers for.
pub fn lane_of(key: &str) -> &str {
    if key.starts_with("session:") {
        return key;
    }
    key.rsplit_once(':').map_or(key, |(lane, _digest)| lane)
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
                retired: std::sync::atomic::AtomicBool::new(false),
                clock: std::sync::Mutex::new((now, now)),
                turn: Arc::default(),
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

    /// [`Pool::session`], held open by the pin it comes with (a send): both
    /// of one entry, so a lane retired meanwhile closes this session too
    /// once the pin goes, rather than leave a socket nothing holds.
    ///
    /// # Errors
    /// What `connect` returns.
    pub async fn session_pinned<F, Fut>(
        &self,
        key: &str,
        connect: F,
    ) -> Result<(Session, Pin), ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, ClientError>>,
    {
        let entry = self.entry(key);
        entry.pins.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let pin = Pin(Arc::clone(&entry));
        let session = entry.session.get_or_try_init(connect).await?.clone();
        if let Ok(mut clock) = entry.clock.lock() {
            clock.0 = Instant::now();
        }
        Ok((session, pin))
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

    /// Waits until no other paced send of `key` is between its pacing wait
    /// and its answer: one at a time, so that a send answered late holds
    /// the next back ([`Pool::pace_after`]) even when the next was due
    /// before that answer.
    pub async fn turn(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.entry(key).turn).lock_owned().await
    }

    /// How long a send of `key` waits so that it goes no sooner than
    /// `min_interval` after this process's previous one; reserves that
    /// moment. (The store spaces slots across gateways; this holds the
    /// interval when a send waited past its slot, e.g. for its session.)
    pub fn pace(&self, key: &str, min_interval: Duration) -> Duration {
        if min_interval.is_zero() {
            return Duration::ZERO;
        }
        let entry = self.entry(key);
        let Ok(mut clock) = entry.clock.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let start = clock.1.max(now);
        clock.1 = start + min_interval;
        start - now
    }

    /// Moves `key`'s next send here to no sooner than `min_interval` from
    /// now (a send answered late counts from its answer).
    /// (A session retired meanwhile is left alone: its lane's next send is
    /// another gateway's, which the store paces.)
    pub fn pace_after(&self, key: &str, min_interval: Duration) {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .map(Arc::clone);
        if let Some(Ok(mut clock)) = entry.as_ref().map(|e| e.clock.lock()) {
            clock.1 = clock.1.max(Instant::now() + min_interval);
        }
    }

    /// Closes the sessions of `lanes` (given up to another gateway): at once
    /// when nothing pins them, else when the last send or listener holding
    /// one lets go; a later use connects anew.
    pub fn retire(&self, lanes: &[String]) {
        use std::sync::atomic::Ordering;
        if lanes.is_empty() {
            return;
        }
        let removed: Vec<Arc<Entry>> = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys: Vec<String> = entries
                .keys()
                .filter(|k| lanes.iter().any(|l| l == lane_of(k)))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| entries.remove(k)).collect()
        };
        for e in removed {
            e.retired.store(true, Ordering::Release);
            if e.pins.load(Ordering::Acquire) == 0 {
                if let Some(s) = e.session.get() {
                    s.close();
                }
            }
        }
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
        self.close_where(|_, (last_use, next), now| {
            now.duration_since(last_use) >= idle && next <= now
        })
    }

    /// Closes the sessions of lanes `owned` says this gateway no longer
    /// holds (another gateway sends for them now), once unused for `quiet`.
    pub fn close_unowned(&self, owned: impl Fn(&str) -> bool, quiet: Duration) -> usize {
        self.close_where(|key, (last_use, _), now| {
            now.duration_since(last_use) >= quiet && !owned(lane_of(key))
        })
    }

    /// Closes the sessions `close` picks (by key, last use and next send
    /// time), except those a listener pins.
    fn close_where(&self, close: impl Fn(&str, (Instant, Instant), Instant) -> bool) -> usize {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|key, e| {
            let pinned = e.pins.load(std::sync::atomic::Ordering::Relaxed) > 0;
            let keep = pinned || e.clock.lock().map(|c| !close(key, *c, now)).unwrap_or(true);
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
    fn sends_of_one_key_go_an_interval_apart_and_others_are_not_held() {
        let pool = Pool::default();
        let interval = Duration::from_secs(2);
        assert_eq!(pool.pace("a", interval), Duration::ZERO);
        let second = pool.pace("a", interval);
        assert!(second > Duration::from_millis(1900) && second <= interval);
        assert_eq!(pool.pace("b", interval), Duration::ZERO);
        let third = pool.pace("a", interval);
        assert!(third > Duration::from_millis(3900) && third <= interval * 2);
        assert_eq!(pool.pace("a", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn sessions_of_lanes_held_elsewhere_close_unless_pinned() {
        let pool = Pool::default();
        let (mine, theirs, listened) = (
            account_key("mine", b"s"),
            account_key("theirs", b"s"),
            account_key("listened", b"s"),
        );
        for key in [&mine, &theirs, &listened] {
            pool.entry(key);
        }
        let _pin = pool.pin(&listened);
        let owned = |lane: &str| lane == "account:mine";
        assert_eq!(
            pool.close_unowned(owned, Duration::from_secs(60)),
            0,
            "used just now"
        );
        assert_eq!(pool.close_unowned(owned, Duration::ZERO), 1);
        let left = pool.entries.lock().unwrap();
        assert!(left.contains_key(&mine) && left.contains_key(&listened));
    }

    #[test]
    fn a_pool_keys_lane_is_its_account_or_its_session() {
        assert_eq!(lane_of(&account_key("shop:x", b"sealed")), "account:shop:x");
        let session = request_key("sessionid=abc");
        assert_eq!(lane_of(&session), session);
    }
}
