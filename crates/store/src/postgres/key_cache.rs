//! API keys found by hash, kept in memory while the database can say when
//! they change: every send looks its key up, and on PostgreSQL that was a
//! round trip of its own. A trigger (migration 12) notifies the channel
//! [`CHANNEL`] at every change of `api_keys` or `api_key_accounts` (a
//! revocation, say, by any gateway or the CLI); a connection of this store's
//! own listens, and each notification empties the cache. Without that
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

use futures_util::StreamExt as _;
use tokio::sync::oneshot;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::types::ApiKey;

/// The channel migration 12's triggers notify.
pub(super) const CHANNEL: &str = "tiktok_dm_api_keys";
/// How long a key is kept, heard changes or not.
const MAX_AGE: Duration = Duration::from_secs(10);
/// Keys kept at most (the cache empties when full).
const MAX_KEYS: usize = 10_000;
/// The wait before listening again after the connection was lost.
const RECONNECT: Duration = Duration::from_secs(1);

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

    fn stop_listening(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.empty();
    }
}

/// The cache every clone of the store shares; its listener ends with the
/// last clone.
#[derive(Clone)]
pub(super) struct KeyCache {
    inner: Arc<Inner>,
    _stop: Arc<oneshot::Sender<()>>,
}

impl KeyCache {
    /// Starts listening on a connection of its own, made with `config` and
    /// `tls`.
    pub(super) fn start(config: tokio_postgres::Config, tls: MakeRustlsConnect) -> Self {
        let inner = Arc::new(Inner::default());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(Arc::clone(&inner), config, tls, stopped));
        Self {
            inner,
            _stop: Arc::new(stop),
        }
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

/// Listens until the store is gone, connecting again after a loss.
async fn listen(
    inner: Arc<Inner>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            ended = listen_once(&inner, &config, tls.clone()) => {
                inner.stop_listening();
                if let Err(e) = ended {
                    tracing::debug!(error = %crate::Error::from(e), "store: API key changes not heard; keys are read each time until heard again");
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(RECONNECT) => {}
        }
    }
    inner.stop_listening();
}

/// One connection's listening: ends when it is lost.
async fn listen_once(
    inner: &Inner,
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            done = &mut subscribe, if !subscribed => {
                done?;
                subscribed = true;
                // Changes made before now were not heard: start empty.
                inner.empty();
                inner.listening.store(true, Ordering::SeqCst);
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => inner.empty(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}
