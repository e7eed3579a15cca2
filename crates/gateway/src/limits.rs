//! Connection and request limits. The gateway serves HTTP/1.1 from an accept
//! loop of its own, because `axum::serve` sets no header timeout and accepts
//! without end, so trickling connections could take every file descriptor:
//!
//! - at most `max_connections` are open at once; beyond, new ones are not
//!   accepted but wait in the kernel's listen queue (as Go's
//!   `netutil.LimitListener` has them wait), holding no descriptor of ours,
//!   and are taken in order as others close;
//! - a connection must send a whole request head within `header_timeout` of
//!   its opening or of its previous answer (hyper's own timer), so a client
//!   trickling its head, or keeping an unused connection, is cut off;
//! - a connection on which no byte moves for `idle_timeout` while none of its
//!   requests is being handled (a client that does not read its answer) is
//!   closed; a request being handled has its own time limits.
//!
//! [`KeyRequests`] counts each API key's requests in progress, for the
//! `Caller` extractor's 429 beyond `max_requests_per_key`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::config::Settings;

/// What bounds the connections, from [`Settings`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    max_connections: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `settings` set.
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            max_connections: settings.max_connections,
            header_timeout: settings.header_timeout,
            idle_timeout: settings.idle_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes. Then it accepts
/// nothing more, lets each open connection finish the requests it is
/// handling (idle ones close at once, and the timeouts still hold), and
/// returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection watches `stop`, and holds a receiver of `open`, whose
    // sender so learns when the last one has closed.
    let (stop, _) = watch::channel(false);
    let (open, _) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first, then a connection: beyond the cap, connections wait
        // in the listen queue rather than in our descriptors.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => tokio::select! {
                () = &mut shutdown => break,
                () = after_accept_error(&e) => continue,
            },
        };
        let held = Held {
            _slot: slot,
            stop: stop.subscribe(),
            _open: open.subscribe(),
        };
        tokio::spawn(connection(tcp, router.clone(), limits, held));
    }
    drop(listener);
    stop.send_replace(true);
    open.closed().await;
}

/// Waits before the next accept: not at all for a connection reset before
/// it was taken; a second for anything else (out of file descriptors: some
/// may close meanwhile), as hyper 0.14 and axum do.
async fn after_accept_error(e: &io::Error) {
    use io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What an open connection holds until it closes.
struct Held {
    /// Its place under `max_connections`.
    _slot: OwnedSemaphorePermit,
    /// Becomes true when the gateway stops.
    stop: watch::Receiver<bool>,
    /// Dropped with the connection, for [`serve`] to wait on.
    _open: watch::Receiver<()>,
}

/// Serves one connection until it ends, is idle too long, or, once the
/// gateway stops, has answered the requests it was handling.
async fn connection(tcp: TcpStream, router: Router, limits: ConnectionLimits, mut held: Held) {
    // Answers go out at once, not held back by Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: tcp,
        activity: Arc::clone(&activity),
    });
    let router = TowerToHyperService::new(router);
    let on_this = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request| {
        let handling = Handling::start(&on_this);
        let slot = KeySlot::default();
        request.extensions_mut().insert(slot.clone());
        let answer = router.call(request);
        async move {
            let answer = answer.await;
            // The key's permit goes with the answer, not before it.
            drop((slot, handling));
            answer
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut served = std::pin::pin!(builder.serve_connection(io, service));
    let mut idle = std::pin::pin!(idle_for(activity, limits.idle_timeout));
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = held.stop.changed(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
            () = &mut idle => {
                tracing::debug!("connection idle too long; closed");
                return;
            }
        }
    }
}

/// A connection's activity: when it last moved a byte, and how many of its
/// requests are being handled.
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last byte moved.
    moved_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            moved_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn moved(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_ms.store(ms, Ordering::SeqCst);
    }

    fn last_moved(&self) -> Instant {
        self.opened + Duration::from_millis(self.moved_ms.load(Ordering::SeqCst))
    }
}

/// One request being handled on a connection, from its head until its answer
/// is made; both ends count as activity.
struct Handling(Arc<Activity>);

impl Handling {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.handling.fetch_add(1, Ordering::SeqCst);
        activity.moved();
        Self(Arc::clone(activity))
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.moved();
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Completes once the connection has been idle for `timeout`: none of its
/// requests handled and no byte moved. A request being handled is bounded by
/// its own limits (the request timeout, a send's deadline), not by this.
async fn idle_for(activity: Arc<Activity>, timeout: Duration) {
    loop {
        let wake = if activity.handling.load(Ordering::SeqCst) > 0 {
            Instant::now() + timeout
        } else {
            let deadline = activity.last_moved() + timeout;
            if deadline <= Instant::now() {
                return;
            }
            deadline
        };
        tokio::time::sleep_until(wake).await;
    }
}

/// A connection's socket, noting each time a byte moves either way.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.moved();
        }
        polled
    }
}

impl Tracked {
    fn wrote(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The requests of each API key in progress, each counted from its
/// authentication until its answer is made, at most `limit` per key.
#[derive(Debug)]
pub struct KeyRequests {
    limit: usize,
    /// Key id → requests in progress; a key with none has no entry.
    counts: Mutex<HashMap<i64, usize>>,
}

impl KeyRequests {
    /// At most `limit` requests per key.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            counts: Mutex::default(),
        }
    }

    /// The most requests of one key in progress at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// One more request of key `id`, counted until the permit is dropped; or
    /// `None` when it already has `limit` in progress.
    pub fn begin(self: &Arc<Self>, id: i64) -> Option<KeyPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.get(&id).copied().unwrap_or(0);
        if count >= self.limit {
            return None;
        }
        counts.insert(id, count + 1);
        Some(KeyPermit {
            requests: Arc::clone(self),
            id,
        })
    }

    /// How many requests of key `id` are in progress.
    pub fn in_progress(&self, id: i64) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&id).copied().unwrap_or(0)
    }
}

/// One request of a key in progress; dropping it ends it.
#[derive(Debug)]
pub struct KeyPermit {
    requests: Arc<KeyRequests>,
    id: i64,
}

impl Drop for KeyPermit {
    fn drop(&mut self) {
        let mut counts = self
            .requests
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match counts.get(&self.id).copied() {
            Some(0 | 1) | None => {
                counts.remove(&self.id);
            }
            Some(n) => {
                counts.insert(self.id, n - 1);
            }
        }
    }
}

/// Where the `Caller` extractor leaves its key's permit. The connection
/// serving a request puts a slot in its extensions and holds it until the
/// answer is made; the permit could not travel with the extractor, which a
/// handler takes apart at once. A request served without a slot (a router
/// called directly) is not counted.
#[derive(Clone, Debug, Default)]
pub struct KeySlot(Arc<Mutex<Option<KeyPermit>>>);

impl KeySlot {
    /// Keeps `permit` until the request's answer is made.
    pub fn hold(&self, permit: KeyPermit) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(permit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_at_most_its_limit_and_each_end_frees_one() {
        let requests = Arc::new(KeyRequests::new(2));
        let first = requests.begin(7).unwrap();
        let second = requests.begin(7).unwrap();
        assert!(requests.begin(7).is_none(), "a third of key 7");
        let other = requests.begin(8).unwrap();
        assert_eq!((requests.in_progress(7), requests.in_progress(8)), (2, 1));
        drop(first);
        let third = requests.begin(7).unwrap();
        drop((second, third, other));
        assert!(requests.counts.lock().unwrap().is_empty(), "no key left");
    }

    #[test]
    fn a_slot_holds_its_permit_until_the_last_clone_goes() {
        let requests = Arc::new(KeyRequests::new(1));
        let slot = KeySlot::default();
        let in_request = slot.clone();
        in_request.hold(requests.begin(1).unwrap());
        drop(in_request);
        assert_eq!(requests.in_progress(1), 1);
        drop(slot);
        assert_eq!(requests.in_progress(1), 0);
    }
}
