//! Prometheus metrics (`GET /metrics`, text exposition format): sends by outcome
//! and TikTok code, delivery and HTTP latency histograms, HTTP answers by route
//! and status, outbox depth and connected sessions. No label carries a key,
//! account or session.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// One delivery attempt's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    /// `sent`, `retry`, `failed` or `unknown`.
    pub outcome: &'static str,
    /// `image` or `text`.
    pub kind: &'static str,
    /// The client's error code (`ok` when sent).
    pub code: String,
    /// TikTok's status code, when it gave one (empty otherwise).
    pub tiktok_code: String,
}

/// An HTTP answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/v1/messages/{id}`), never the concrete path.
    pub route: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// A route, for the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern.
    pub route: String,
}

/// A message kind, for the delivery histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `image` or `text`.
    pub kind: &'static str,
}

/// An event logged, by type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `message.received`, `typing`, ...
    pub r#type: &'static str,
}

/// A webhook delivery attempt's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `delivered`, `retry` or `gave_up`.
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// A family of latency histograms, one per label set.
fn latency_family<L>() -> Family<L, Histogram, fn() -> Histogram>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(latency_histogram)
}

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    /// Delivery attempts by outcome.
    pub sends: Family<SendLabels, Counter>,
    /// Seconds per delivery attempt.
    pub delivery_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Messages accepted into the outbox.
    pub accepted: Counter,
    /// Sends answered 202 at once because `max_waiting_sends` were waiting.
    pub answered_early: Counter,
    /// HTTP answers.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Seconds per HTTP request.
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    outbox_depth: Gauge,
    sessions: Gauge,
    gateways_live: Gauge,
    lanes_owned: Gauge,
    waiting: Gauge,
    request_memory: Gauge,
    image_memory: Gauge,
    /// Listening, the event log and webhooks.
    pub inbound: InboundMetrics,
}

/// The metrics of listening, the event log and webhooks.
pub struct InboundMetrics {
    /// Webhook delivery attempts by outcome.
    pub webhook_attempts: Family<WebhookLabels, Counter>,
    webhooks_pending: Gauge,
    webhooks_in_flight: Gauge,
    /// Events logged by type (repeats caught up again are not counted).
    pub events_logged: Family<EventLabels, Counter>,
    /// Accounts with a running listener.
    pub listening: Gauge,
    /// Stored accounts whose session TikTok refused (`expired`).
    pub accounts_expired: Gauge,
}

/// What the gauges show, read when `/metrics` is asked.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Messages accepted and not yet final.
    pub outbox_depth: u64,
    /// Client sessions in the pool.
    pub sessions: u64,
    /// Sends waiting for their outcome.
    pub waiting: u64,
    /// Bytes of `request_memory` taken by send bodies being read.
    pub request_memory_bytes: u64,
    /// Bytes of `image_memory` taken by images being delivered.
    pub image_memory_bytes: u64,
    /// Webhook deliveries waiting for an attempt.
    pub webhooks_pending: u64,
    /// Webhook deliveries being posted.
    pub webhooks_in_flight: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tiktok_dm");
        // Registered in this order, which is the order `/metrics` lists them in.
        Self {
            sends: registered(
                &mut registry,
                "sends",
                "Delivery attempts by outcome, message kind, error code and TikTok code",
                Family::default(),
            ),
            delivery_seconds: registered(
                &mut registry,
                "delivery_seconds",
                "Time of one delivery attempt (upload included for images)",
                latency_family(),
            ),
            accepted: registered(
                &mut registry,
                "messages_accepted",
                "Messages accepted into the outbox",
                Counter::default(),
            ),
            answered_early: registered(
                &mut registry,
                "sends_answered_early",
                "Sends answered 202 at once because max_waiting_sends sends were waiting for their outcome",
                Counter::default(),
            ),
            http_requests: registered(
                &mut registry,
                "http_requests",
                "HTTP answers by route, method and status",
                Family::default(),
            ),
            http_seconds: registered(
                &mut registry,
                "http_request_seconds",
                "Time to answer an HTTP request (a send waits for its delivery)",
                latency_family(),
            ),
            outbox_depth: registered(
                &mut registry,
                "outbox_depth",
                "Messages accepted and not yet final",
                Gauge::default(),
            ),
            sessions: registered(
                &mut registry,
                "sessions_connected",
                "TikTok client sessions in the pool",
                Gauge::default(),
            ),
            gateways_live: registered(
                &mut registry,
                "gateways_live",
                "Gateways sharing the database whose heartbeat is current (this one included)",
                Gauge::default(),
            ),
            lanes_owned: registered(
                &mut registry,
                "lanes_owned",
                "Lanes (stored accounts, per-request sessions) this gateway holds the lease of",
                Gauge::default(),
            ),
            waiting: registered(
                &mut registry,
                "sends_waiting",
                "Send requests waiting for their outcome before answering",
                Gauge::default(),
            ),
            request_memory: registered(
                &mut registry,
                "request_memory_bytes",
                "Bytes of request_memory_mib held by send bodies being read and decoded",
                Gauge::default(),
            ),
            image_memory: registered(
                &mut registry,
                "image_memory_bytes",
                "Bytes of image_memory_mib held by images being delivered",
                Gauge::default(),
            ),
            inbound: InboundMetrics::registered(&mut registry),
            registry,
        }
    }
}

impl InboundMetrics {
    /// Each registered in `registry`, in the order `/metrics` lists them.
    fn registered(registry: &mut Registry) -> Self {
        Self {
            webhook_attempts: registered(
                registry,
                "webhook_attempts",
                "Webhook delivery attempts by outcome: delivered, retry (to be tried again), gave_up",
                Family::default(),
            ),
            webhooks_pending: registered(
                registry,
                "webhook_deliveries_pending",
                "Webhook deliveries waiting for their first or next attempt",
                Gauge::default(),
            ),
            webhooks_in_flight: registered(
                registry,
                "webhook_deliveries_in_flight",
                "Webhook deliveries claimed and being posted",
                Gauge::default(),
            ),
            events_logged: registered(
                registry,
                "events_logged",
                "Events logged by type (inbound messages, reads, typing, reactions, deletions, delivery outcomes)",
                Family::default(),
            ),
            listening: registered(
                registry,
                "accounts_listening",
                "Stored accounts with a running listener",
                Gauge::default(),
            ),
            accounts_expired: registered(
                registry,
                "accounts_expired",
                "Stored accounts whose session TikTok refused; they need a new session",
                Gauge::default(),
            ),
        }
    }
}

impl Metrics {
    /// Records what the last heartbeat found: `live` gateways, `owned` lanes
    /// held by this one.
    pub fn set_ownership(&self, live: usize, owned: usize) {
        self.gateways_live
            .set(i64::try_from(live).unwrap_or(i64::MAX));
        self.lanes_owned
            .set(i64::try_from(owned).unwrap_or(i64::MAX));
    }

    /// The counter of webhook attempts ending `outcome`.
    pub fn webhook_deliveries(&self, outcome: &'static str) -> Counter {
        self.inbound
            .webhook_attempts
            .get_or_create(&WebhookLabels { outcome })
            .clone()
    }
}

/// Registers `metric` under `name` and returns it: the registry keeps a clone,
/// which shares its values with the one returned.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// The exposition text, with the gauges set to `now` first.
    pub fn render(&self, now: &Gauges) -> String {
        let set = |gauge: &Gauge, value: u64| gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        set(&self.outbox_depth, now.outbox_depth);
        set(&self.sessions, now.sessions);
        set(&self.waiting, now.waiting);
        set(&self.request_memory, now.request_memory_bytes);
        set(&self.image_memory, now.image_memory_bytes);
        set(&self.inbound.webhooks_pending, now.webhooks_pending);
        set(&self.inbound.webhooks_in_flight, now.webhooks_in_flight);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics: encoding failed");
        }
        out
    }
}
