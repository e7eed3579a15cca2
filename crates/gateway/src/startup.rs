//! `Application`: binds the listener, runs the API and the outbox worker.

use std::sync::Arc;

use tiktok_dm_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};

use crate::api::router;
use crate::budget::MemoryBudget;
use crate::config::Settings;
use crate::limits::{self, ConnectionLimits, KeyRequests};
use crate::metrics::Metrics;
use crate::outbox;
use crate::pool::Pool;
use crate::secrets::Vault;
use crate::state::AppState;

/// A bound, ready-to-run gateway.
pub struct Application<S> {
    listener: TcpListener,
    state: AppState<S>,
}

impl<S: Store> Application<S> {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn build(
        addr: &str,
        settings: Settings,
        store: S,
        vault: Vault,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let body_room = MemoryBudget::new(
            settings
                .request_memory
                .max(crate::api::body_limit(&settings).saturating_mul(2)),
        );
        let image_room = MemoryBudget::new(settings.image_memory.max(settings.image_limit));
        let key_requests = Arc::new(KeyRequests::new(settings.max_requests_per_key));
        let state = AppState {
            store,
            vault: Arc::new(vault),
            settings: Arc::new(settings),
            wake: Arc::new(Notify::new()),
            pool: Pool::default(),
            metrics: Arc::new(Metrics::default()),
            waiters: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(outbox::MAX_IN_FLIGHT)),
            body_room,
            image_room,
            closing: Arc::new(watch::channel(false).0),
            depth: Arc::default(),
            key_requests,
            events_appended: Arc::new(Notify::new()),
            latest_event: Arc::new(watch::channel(0).0),
            short_ids: Arc::default(),
            ownership: Arc::new(crate::ownership::Ownership::new(crate::now_ms())),
        };
        Ok(Self { listener, state })
    }

    /// The bound address.
    ///
    /// # Errors
    /// The socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops the worker. Connections
    /// are bounded as [`crate::limits`] describes.
    ///
    /// # Errors
    /// None for now: a failed accept is logged and tried again.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Leases are given up only once the deliveries in flight ended.
        let (leave_tx, leave_rx) = watch::channel(false);
        let ownership = tokio::spawn(crate::ownership::run(self.state.clone(), leave_rx));
        let worker = tokio::spawn(outbox::run(self.state.clone(), stop_rx.clone()));
        let webhooks = tokio::spawn(crate::webhooks::deliver::run(
            self.state.clone(),
            stop_rx.clone(),
        ));
        let outcomes = tokio::spawn(hear_outcomes(self.state.clone(), stop_rx.clone()));
        let wanted = tokio::spawn(hear_wanted(self.state.clone(), stop_rx.clone()));
        let listening = tokio::spawn(crate::inbound::run(self.state.clone(), stop_rx));
        // Waiting sends hear of the stop first, so that the graceful shutdown
        // (which waits for every request in progress) is not held up by them.
        let closing = Arc::clone(&self.state.closing);
        let shutdown = async move {
            shutdown.await;
            closing.send_replace(true);
        };
        let limits = ConnectionLimits::of(&self.state.settings);
        limits::serve(self.listener, router(self.state), limits, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = worker.await;
        let _ = listening.await;
        let _ = webhooks.await;
        let _ = outcomes.await;
        let _ = wanted.await;
        let _ = leave_tx.send(true);
        let _ = ownership.await;
        Ok(())
    }
}

/// Passes on what the store hears of messages other gateways ended (on a
/// shared database), so that a send accepted here and delivered by the
/// gateway holding its lane is answered at once; until `stop`.
async fn hear_outcomes<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let Some(mut heard) = state.store.outcomes() else {
        return;
    };
    // Missed ids: their handlers read the store on their own.
    while let Some(id) = next_heard(&mut heard, &mut stop).await {
        if let Some(id) = id {
            state.waiters.ended_elsewhere(&id);
        }
    }
}

/// Hears the lanes wanted by any gateway (`ownership::want`) until `stop`:
/// held here, the worker claims now; free and this gateway's share, it
/// takes the lane first.
async fn hear_wanted<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let Some(mut heard) = state.store.lanes_wanted() else {
        return;
    };
    while let Some(lane) = next_heard(&mut heard, &mut stop).await {
        let claim = match lane {
            Some(lane) => {
                state.ownership.owns(&lane, crate::now_ms())
                    || crate::ownership::adopt(&state, &lane).await
            }
            // Some missed: a claim finds whatever they were for.
            None => true,
        };
        if claim {
            state.wake.notify_one();
        }
    }
}

/// The next thing the store passes on (`None` inside when some were missed
/// because this fell behind); `None` at `stop`, which comes first, or when
/// the store stops passing things on.
async fn next_heard(
    heard: &mut broadcast::Receiver<String>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Option<String>> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        got = heard.recv() => match got {
            Ok(got) => Some(Some(got)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(None),
            Err(broadcast::error::RecvError::Closed) => None,
        },
    }
}
