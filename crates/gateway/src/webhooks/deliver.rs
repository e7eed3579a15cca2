//! The webhook worker: claims due deliveries (leased for twice
//! `webhook_timeout_ms`), posts each on a task of its own (at most
//! `webhook_concurrency` at once, and at most [`PER_WEBHOOK`] of one webhook,
//! so an endpoint that hangs cannot take every slot) and records the outcome
//! under its claim. A 2xx answer is delivered; any other answer, a timeout or
//! a failed connection is tried again after a full-jitter exponential backoff
//! (1 s doubling, up to an hour) until `webhook_max_age_hours` after the
//! delivery was queued (with its event, or by a replay), then given up with a
//! short error; never past `event_retention_days` after the event, when the
//! event leaves the log with its deliveries. A destination that is not
//! allowed, a secret that does not open or a payload that is not JSON is
//! given up at once. Woken by [`AppState::events_appended`], when a post
//! ends, and every second.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use tiktok_dm_client::backoff::full_jitter;
use tiktok_dm_store::{ClaimedDelivery, Store, StoredEvent, WebhookOutcome};
use tokio::sync::{Notify, Semaphore, watch};

use super::{sign, ssrf};
use crate::now_ms;
use crate::secrets::SealContext;
use crate::state::AppState;

/// The first retry's bound; each doubles it, up to [`RETRY_CAP`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const RETRY_CAP: Duration = Duration::from_secs(3600);
/// The most deliveries of one webhook in flight at once, across gateways
/// sharing a database: a slow endpoint with a backlog holds at most this
/// many of the `webhook_concurrency` slots, and the others keep flowing.
pub const PER_WEBHOOK: u32 = 4;
/// How often due deliveries are looked for without a wake-up.
const POLL: Duration = Duration::from_secs(1);
/// The most characters of an answer kept in a delivery's error.
const ANSWER_SHOWN: usize = 200;
/// The `User-Agent` of every delivery.
const AGENT: &str = concat!("tiktok-dm-webhooks/", env!("CARGO_PKG_VERSION"));

/// Why an attempt did not deliver.
enum Failure {
    /// Try again later (the endpoint answered other than 2xx, timed out, or
    /// could not be reached).
    Retry(String),
    /// Trying again would fail the same way.
    Permanent(String),
}

/// The worker's HTTP client: no proxy, no redirects, every connection through
/// a [`ssrf::CheckedResolver`].
///
/// # Errors
/// The client cannot be built (no TLS configuration).
fn client(allow_private: bool) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .dns_resolver(Arc::new(ssrf::CheckedResolver { allow_private }))
        .build()
        .map_err(|e| e.to_string())
}

/// Runs until `stop` turns true, then waits up to `webhook_timeout_ms` for the
/// posts in flight; any unfinished go again after their lease.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let settings = Arc::clone(&state.settings);
    let http = match client(settings.allow_private_webhooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: no HTTP client; nothing is delivered");
            return;
        }
    };
    let slots = settings.webhook_concurrency.max(1);
    let permits = Arc::new(Semaphore::new(slots));
    let lease_ms =
        i64::try_from(settings.webhook_timeout.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
    // Told when a post ends: its webhook may have more due, held back by
    // [`PER_WEBHOOK`].
    let ended = Arc::new(Notify::new());
    let mut pause = Duration::ZERO;
    while !*stop.borrow() {
        // Registered before the claim, so news during it is not missed.
        let appended = state.events_appended.notified();
        let finished = ended.notified();
        tokio::pin!(appended, finished);
        appended.as_mut().enable();
        finished.as_mut().enable();
        let room = permits.available_permits();
        if room == 0 {
            tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => drop(p),
                _ = stop.changed() => {}
            }
            continue;
        }
        let max = u32::try_from(room).unwrap_or(u32::MAX);
        let wait = match state
            .store
            .claim_webhook_deliveries(max, PER_WEBHOOK, lease_ms, now_ms())
            .await
        {
            Ok(claimed) => {
                pause = Duration::ZERO;
                let drained = claimed.len() < room;
                for delivery in claimed {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        break; // Cannot happen: room was counted; it goes after its lease.
                    };
                    let (state, http, ended) = (state.clone(), http.clone(), Arc::clone(&ended));
                    tokio::spawn(async move {
                        deliver(&state, &http, delivery).await;
                        drop(permit);
                        ended.notify_one();
                    });
                }
                if drained { POLL } else { Duration::ZERO }
            }
            Err(e) => {
                pause = (pause * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
                tracing::error!(error = %e, retry_in = ?pause, "webhooks: claiming failed");
                pause
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = &mut appended => {}
                () = &mut finished => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }
    let all = u32::try_from(slots).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(settings.webhook_timeout, permits.acquire_many(all)).await;
}

/// One attempt of one delivery, and its outcome recorded under its claim.
async fn deliver<S: Store>(state: &AppState<S>, http: &reqwest::Client, d: ClaimedDelivery) {
    let outcome = match attempt(state, http, &d).await {
        Ok(()) => WebhookOutcome::Delivered,
        Err(Failure::Permanent(why)) => WebhookOutcome::GaveUp { error: why },
        Err(Failure::Retry(why)) => retry_or_give_up(state, &d, why, now_ms()),
    };
    let label = match &outcome {
        WebhookOutcome::Delivered => "delivered",
        WebhookOutcome::Retry { .. } => "retry",
        WebhookOutcome::GaveUp { error } => {
            tracing::warn!(webhook = %d.webhook.id, cursor = d.event.cursor, attempts = d.attempts, error = %error, "webhooks: delivery given up");
            "gave_up"
        }
    };
    state.metrics.webhook_deliveries(label).inc();
    match state
        .store
        .finish_webhook_delivery(d.claim(), outcome, now_ms())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(webhook = %d.webhook.id, "webhooks: lease lost; the newer claim records the outcome");
        }
        Err(e) => {
            tracing::error!(error = %e, "webhooks: outcome not recorded; the delivery goes again after its lease");
        }
    }
}

/// The next attempt's time, or the end when it would fall after the
/// delivery's [`deadline`].
fn retry_or_give_up<S>(
    state: &AppState<S>,
    d: &ClaimedDelivery,
    why: String,
    now: i64,
) -> WebhookOutcome {
    let attempt = u32::try_from(d.attempts.max(1)).unwrap_or(u32::MAX);
    let delay = full_jitter(attempt, RETRY_FIRST, RETRY_CAP, rand::random::<f64>());
    let at = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    let (end, until) = deadline(&state.settings, d);
    if at > end {
        WebhookOutcome::GaveUp {
            error: format!("{why}; given up after {} attempts ({until})", d.attempts),
        }
    } else {
        WebhookOutcome::Retry { at }
    }
}

/// When a delivery's retries end (ms), and why then: `webhook_max_age` after
/// it was queued (with its event, or by a replay), or sooner when its event
/// leaves the log (`event_retention`) and the delivery with it.
fn deadline(settings: &crate::Settings, d: &ClaimedDelivery) -> (i64, String) {
    let ms = |t: Duration| i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
    let aged = d.queued_at.saturating_add(ms(settings.webhook_max_age));
    let expires = d
        .event
        .created_at
        .saturating_add(ms(settings.event_retention));
    if expires < aged {
        let days = settings.event_retention.as_secs() / 86_400;
        (
            expires,
            format!("its event leaves the log {days} days after it was logged"),
        )
    } else {
        let hours = settings.webhook_max_age.as_secs() / 3600;
        (aged, format!("{hours} h after it was queued"))
    }
}

/// The body posted: `{"type", "timestamp", "data"}`.
///
/// # Errors
/// The stored payload is not JSON.
pub fn body(event: &StoredEvent) -> Result<Vec<u8>, String> {
    // As `/v1/events` shows it: without a received image's key.
    let data = crate::inbound::public_payload(&event.payload)
        .ok_or_else(|| "the event's payload is not JSON".to_owned())?;
    serde_json::to_vec(&serde_json::json!({
        "type": event.event_type,
        "timestamp": crate::rfc3339_ms(event.occurred_at),
        "data": data,
    }))
    .map_err(|e| e.to_string())
}

/// The `webhook-id` of an event: the same on every attempt and replay.
pub fn message_id(event: &StoredEvent) -> String {
    format!("evt_{}", event.cursor)
}

/// Posts `d` once.
async fn attempt<S: Store>(
    state: &AppState<S>,
    http: &reqwest::Client,
    d: &ClaimedDelivery,
) -> Result<(), Failure> {
    let hook = &d.webhook;
    let allow_private = state.settings.allow_private_webhooks;
    let url = ssrf::parse(&hook.url).map_err(|r| Failure::Permanent(refusal_text(r)))?;
    // An address literal is connected to without a resolver: checked here.
    if let Some(ip) = ssrf::literal(&url).filter(|ip| !ssrf::allowed(*ip, allow_private)) {
        return Err(Failure::Permanent(format!(
            "{ip} is a loopback, private or reserved address; webhooks go only to public addresses (unless allow_private_webhooks is set)"
        )));
    }
    let secret = state
        .vault
        .open(&hook.secret_sealed, SealContext::Webhook(hook.key_id, &hook.url))
        .map_err(|_| Failure::Permanent("the webhook's secret cannot be opened (a master key other than the one it was sealed with?)".into()))?;
    let key = sign::signing_key(&secret)
        .ok_or_else(|| Failure::Permanent("the webhook's secret is malformed".into()))?;
    let body = body(&d.event).map_err(Failure::Permanent)?;
    let id = message_id(&d.event);
    let timestamp = now_ms() / 1000;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
    let header =
        |v: String| HeaderValue::from_str(&v).map_err(|e| Failure::Permanent(e.to_string()));
    headers.insert("webhook-id", header(id.clone())?);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert(
        "webhook-signature",
        header(sign::signature(&key, &id, timestamp, &body))?,
    );
    let sent = http
        .post(url)
        .headers(headers)
        .body(body)
        .timeout(state.settings.webhook_timeout)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(Failure::Retry(answer_text(answer).await)),
        Err(e) => Err(match ssrf::refusal(&e) {
            Some(refused) => Failure::Permanent(refused),
            None if e.is_timeout() => Failure::Retry(format!(
                "no answer within {} ms",
                state.settings.webhook_timeout.as_millis()
            )),
            // Without the URL: its query may hold a token.
            None => Failure::Retry(format!("cannot post: {}", e.without_url())),
        }),
    }
}

fn refusal_text(r: ssrf::UrlRefusal) -> String {
    match r {
        ssrf::UrlRefusal::Invalid(m) | ssrf::UrlRefusal::NotAllowed(m) => m,
    }
}

/// `HTTP <status>`, and the start of the answer (at most [`ANSWER_SHOWN`]
/// characters, control characters replaced), for the recorded error.
async fn answer_text(mut answer: reqwest::Response) -> String {
    let status = answer.status().as_u16();
    let mut start = Vec::new();
    while start.len() < ANSWER_SHOWN * 4 {
        match answer.chunk().await {
            Ok(Some(chunk)) => start.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&start)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ANSWER_SHOWN)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_wraps_the_payload() {
        let event = StoredEvent {
            cursor: 7,
            account: "shop".into(),
            event_type: "message.received".into(),
            conversation_id: None,
            payload: r#"{"text":"hi","b":1}"#.into(),
            occurred_at: 1_000,
            created_at: 2_000,
        };
        let body: serde_json::Value = serde_json::from_slice(&body(&event).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "message.received", "timestamp": "1970-01-01T00:00:01.000Z", "data": {"text": "hi", "b": 1}})
        );
        assert_eq!(message_id(&event), "evt_7");
        let broken = StoredEvent {
            payload: "{".into(),
            ..event
        };
        assert!(body_err(&broken));
    }

    fn body_err(e: &StoredEvent) -> bool {
        body(e).is_err()
    }

    /// A delivery of an event logged at 0, queued at `queued_at` (ms).
    fn queued(queued_at: i64) -> ClaimedDelivery {
        let webhook = tiktok_dm_store::Webhook {
            id: "wh_0".into(),
            key_id: 1,
            url: "https://hooks.example/".into(),
            events: vec!["typing".into()],
            secret_sealed: Vec::new(),
            created_at: 0,
        };
        let event = StoredEvent {
            cursor: 1,
            account: "shop".into(),
            event_type: "typing".into(),
            conversation_id: None,
            payload: "{}".into(),
            occurred_at: 0,
            created_at: 0,
        };
        ClaimedDelivery {
            id: 1,
            token: 1,
            webhook,
            event,
            attempts: 1,
            queued_at,
        }
    }

    #[test]
    fn retries_end_max_age_after_queueing_or_when_the_event_leaves_the_log() {
        const HOUR: i64 = 3_600_000;
        let endpoints = tiktok_dm_client::Endpoints::sandbox("http://127.0.0.1:9").unwrap();
        let mut settings = crate::Settings::new(endpoints);
        settings.webhook_max_age = Duration::from_secs(24 * 3600);
        settings.event_retention = Duration::from_secs(7 * 86_400);
        assert_eq!(deadline(&settings, &queued(0)).0, 24 * HOUR);
        let (end, why) = deadline(&settings, &queued(48 * HOUR));
        assert_eq!(
            end,
            72 * HOUR,
            "replayed two days on: a whole window from then"
        );
        assert!(why.contains("24 h after it was queued"), "{why}");
        let (end, why) = deadline(&settings, &queued(160 * HOUR));
        assert_eq!(end, 168 * HOUR, "not past the event's retention");
        assert!(why.contains("leaves the log 7 days"), "{why}");
    }
}
