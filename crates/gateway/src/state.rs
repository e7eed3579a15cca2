//! What every handler and the outbox worker share: the store, the vault,
//! the settings, the worker's sessions and wake-ups, the metrics, and the
//! memory and delivery budgets. Both [`crate::api`] and [`crate::outbox`]
//! depend on this module, and neither on the other's state.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::budget::MemoryBudget;
use crate::config::Settings;
use crate::depth::DepthCache;
use crate::limits::KeyRequests;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::secrets::Vault;
use crate::waiters::Waiters;

/// What every handler and the worker share.
pub struct AppState<S> {
    /// The store.
    pub store: S,
    /// Seals and opens TikTok sessions.
    pub vault: Arc<Vault>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Wakes the outbox worker when a request is accepted.
    pub wake: Arc<Notify>,
    /// The worker's client sessions.
    pub pool: Pool,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Send handlers waiting for their outcome.
    pub waiters: Arc<Waiters>,
    /// One permit per delivery in flight ([`crate::outbox::MAX_IN_FLIGHT`]),
    /// shared by the worker and the send handlers that start the delivery of
    /// the message they claimed with their acceptance.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The send bodies (and the images decoded from them) handlers may hold at
    /// once: `request_memory`, and at least the largest body twice.
    pub body_room: MemoryBudget,
    /// The image bytes deliveries may hold at once: `image_memory`, and at
    /// least one image of the largest size allowed (without it, a burst of
    /// 20 MB images to many accounts would hold up to
    /// [`crate::outbox::MAX_IN_FLIGHT`] of them).
    pub image_room: MemoryBudget,
    /// Becomes true when the gateway starts to stop: waiting sends answer at
    /// once (202 with their id) instead of holding the shutdown.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The outbox depth `/readyz` and `/metrics` show, counted at most once
    /// a second.
    pub depth: Arc<DepthCache>,
    /// Each API key's requests in progress, at most `max_requests_per_key`.
    pub key_requests: Arc<KeyRequests>,
    /// Wakes the webhook worker when events were logged.
    pub events_appended: Arc<Notify>,
    /// The newest event cursor this process logged: long polls of
    /// `/v1/events` wait for it to move (and read the store every second,
    /// for events other processes logged).
    pub latest_event: Arc<tokio::sync::watch::Sender<i64>>,
    /// Conversation short ids found from inboxes, for sends without one.
    pub short_ids: Arc<crate::short_ids::ShortIds>,
    /// This gateway's id and the lanes it holds.
    pub ownership: Arc<crate::ownership::Ownership>,
}

impl<S> AppState<S> {
    /// Tells those waiting for events that one of `event_type` was logged
    /// under `cursor`: the count in `/metrics`, long polls, the webhook worker.
    pub fn event_logged(&self, event_type: &'static str, cursor: i64) {
        self.metrics
            .inbound
            .events_logged
            .get_or_create(&crate::metrics::EventLabels { r#type: event_type })
            .inc();
        self.latest_event.send_if_modified(|latest| {
            let moved = cursor > *latest;
            *latest = (*latest).max(cursor);
            moved
        });
        self.events_appended.notify_one();
    }
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            vault: Arc::clone(&self.vault),
            settings: Arc::clone(&self.settings),
            wake: Arc::clone(&self.wake),
            pool: self.pool.clone(),
            metrics: Arc::clone(&self.metrics),
            waiters: Arc::clone(&self.waiters),
            in_flight: Arc::clone(&self.in_flight),
            body_room: self.body_room.clone(),
            image_room: self.image_room.clone(),
            closing: Arc::clone(&self.closing),
            depth: Arc::clone(&self.depth),
            key_requests: Arc::clone(&self.key_requests),
            events_appended: Arc::clone(&self.events_appended),
            latest_event: Arc::clone(&self.latest_event),
            short_ids: Arc::clone(&self.short_ids),
            ownership: Arc::clone(&self.ownership),
        }
    }
}
