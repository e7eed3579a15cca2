//! API keys found by hash, kept in memory while the database can say when
//! they change: every send looks its key up, and on PostgreSQL that was a
//! round trip of its own. A trigger (migration 12) notifies the channel
//! `tiktok_dm_api_keys` at every change of `api_keys` or `api_key_accounts`
//! (a revocation, say, by any gateway or the CLI); a connection of this
//! store's own listens (`notices.rs`), and each notification empties the
//! cache. Without that
//! connection (not yet up, or lost) nothing is cached and every lookup reads
//! the database, as before. A lookup that raced a notification is not kept
//! ([`KeyCache::keep`] checks the generation it started under). Unknown keys
//! are never cached. What is left is the time a notification takes to arrive
//! (well under a millisecond on one machine); the acceptance checks
//! revocation again in its own transaction in any case. A key is kept
//! [`MAX_AGE`] at most, a bound should notifications be lost without the
//! connection failing (a pooler in transaction mode does not pass them on).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::types::ApiKey;

/// How long a key is kept, heard changes or not.
const MAX_AGE: Duration = Duration::from_secs(10);
/// Keys kept at most (the cache empties when full).
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
struct Inner {
    keys: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    /// Raised at every emptying; a lookup keeps its answer only when it
    /// is unchanged since the lookup began.
    generation: AtomicU64,
    /// Whether the notifications are heard now.
    listening: AtomicBool,
}

impl Inner {
    fn empty(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut keys) = self.keys.lock() {
            keys.clear();
        }
    }
}

/// The cache every clone of the store shares; `notices.rs` tells it what
/// the database says.
#[derive(Clone, Default)]
pub(super) struct KeyCache {
    inner: Arc<Inner>,
}

impl KeyCache {
    /// A change was heard: nothing kept is good any more.
    pub(super) fn changed(&self) {
        self.inner.empty();
    }

    /// Whether changes are heard now; either way it starts empty (changes
    /// made before were not heard, and what is kept is not served while
    /// they are not). A lookup begun before keeps nothing: the emptying
    /// raises the generation.
    pub(super) fn hearing(&self, on: bool) {
        self.inner.listening.store(on, Ordering::SeqCst);
        self.inner.empty();
    }

    /// The key with this hash, if kept.
    pub(super) fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        if !self.inner.listening.load(Ordering::SeqCst) {
            return None;
        }
        let keys = self.inner.keys.lock().ok()?;
        let (key, kept) = keys.get(hash)?;
        (kept.elapsed() < MAX_AGE).then(|| key.clone())
    }

    /// The generation to pass to [`Self::keep`], read before the lookup.
    pub(super) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Keeps `key`, found by a lookup begun at `generation`, unless a change
    /// was heard since (or nothing is heard now).
    pub(super) fn keep(&self, hash: [u8; 32], key: &ApiKey, generation: u64) {
        let Ok(mut keys) = self.inner.keys.lock() else {
            return;
        };
        // Checked under the lock `empty` takes, so an emptying cannot fall
        // between the check and the insert.
        if !self.inner.listening.load(Ordering::SeqCst) || self.generation() != generation {
            return;
        }
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(hash, (key.clone(), Instant::now()));
    }
}
