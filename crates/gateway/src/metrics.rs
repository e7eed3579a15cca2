//! Prometheus metrics (`GET /metrics`, text exposition format): sends by outcome
//! and TikTok code, delivery and HTTP latency histograms, HTTP answers by route
//! and status, outbox depth and connected sessions. No label carries a key,
//! account or session.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
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
    waiting: Gauge,
    request_memory: Gauge,
    image_memory: Gauge,
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tiktok_dm");
        let sends = Family::<SendLabels, Counter>::default();
        registry.register(
            "sends",
            "Delivery attempts by outcome, message kind, error code and TikTok code",
            sends.clone(),
        );
        let delivery_seconds =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "delivery_seconds",
            "Time of one delivery attempt (upload included for images)",
            delivery_seconds.clone(),
        );
        let accepted = Counter::default();
        registry.register(
            "messages_accepted",
            "Messages accepted into the outbox",
            accepted.clone(),
        );
        let answered_early = Counter::default();
        registry.register(
            "sends_answered_early",
            "Sends answered 202 at once because max_waiting_sends sends were waiting for their outcome",
            answered_early.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP answers by route, method and status",
            http_requests.clone(),
        );
        let http_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_seconds",
            "Time to answer an HTTP request (a send waits for its delivery)",
            http_seconds.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Messages accepted and not yet final",
            outbox_depth.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "sessions_connected",
            "TikTok client sessions in the pool",
            sessions.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "sends_waiting",
            "Send requests waiting for their outcome before answering",
            waiting.clone(),
        );
        let request_memory = Gauge::default();
        registry.register(
            "request_memory_bytes",
            "Bytes of request_memory_mib held by send bodies being read and decoded",
            request_memory.clone(),
        );
        let image_memory = Gauge::default();
        registry.register(
            "image_memory_bytes",
            "Bytes of image_memory_mib held by images being delivered",
            image_memory.clone(),
        );
        Self {
            registry,
            sends,
            delivery_seconds,
            accepted,
            answered_early,
            http_requests,
            http_seconds,
            outbox_depth,
            sessions,
            waiting,
            request_memory,
            image_memory,
        }
    }
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
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics: encoding failed");
        }
        out
    }
}
