//! Webhooks' values: a webhook of an API key, and its deliveries (one per
//! event it receives, queued with the event, claimed under a lease and a
//! fencing token as the outbox's messages are).

use serde::Serialize;

use crate::events::StoredEvent;
use crate::types::check;

/// A webhook to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// The API key it belongs to (and whose accounts it may see).
    pub key_id: i64,
    /// Where events are posted.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Its signing secret, sealed by the gateway.
    pub secret_sealed: Vec<u8>,
}

impl NewWebhook {
    /// Refuses text no backend may store (see [`crate::types::storable`]).
    pub(crate) fn check(&self) -> crate::Result<()> {
        check("a webhook URL", &self.url)?;
        self.events
            .iter()
            .try_for_each(|e| check("an event type", e))
    }

    /// Its event types in the order given, each once.
    pub(crate) fn distinct_events(&self) -> Vec<String> {
        let mut events: Vec<String> = Vec::with_capacity(self.events.len());
        for e in &self.events {
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
        events
    }
}

/// A stored webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// `wh_` and 16 random hex digits.
    pub id: String,
    /// The API key it belongs to.
    pub key_id: i64,
    /// Where events are posted.
    pub url: String,
    /// The event types it receives, in the order given, without repeats.
    pub events: Vec<String>,
    /// Its signing secret, sealed (never serialised).
    #[serde(skip)]
    pub secret_sealed: Vec<u8>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A claimed webhook delivery and the fencing token of that claim: every
/// write of its outcome names it, and a write whose token is not the row's
/// latest (it was claimed again after this lease ran out) changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookClaim {
    /// Delivery row id.
    pub id: i64,
    /// The claim's token.
    pub token: i64,
}

/// A delivery claimed by
/// [`Store::claim_webhook_deliveries`](crate::Store::claim_webhook_deliveries):
/// what to post, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// Delivery row id.
    pub id: i64,
    /// This claim's fencing token.
    pub token: i64,
    /// The webhook (its URL and sealed secret).
    pub webhook: Webhook,
    /// The event to post; its cursor names it (the webhook-id header).
    pub event: StoredEvent,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// When it was queued (ms): with its event, or by the latest replay that
    /// queued it or made it due again. Its retries are counted from here.
    pub queued_at: i64,
}

impl ClaimedDelivery {
    /// Its claim, for the write of its outcome.
    pub fn claim(&self) -> WebhookClaim {
        WebhookClaim {
            id: self.id,
            token: self.token,
        }
    }
}

/// How a webhook delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The endpoint took it.
    Delivered,
    /// Try again at `at` (ms).
    Retry {
        /// When it is due again.
        at: i64,
    },
    /// No more attempts.
    GaveUp {
        /// Why (kept on the row).
        error: String,
    },
}

/// The webhook delivery queue, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WebhookDeliveryStats {
    /// Deliveries waiting for their first or next attempt.
    pub pending: u64,
    /// Deliveries claimed and leased.
    pub in_flight: u64,
}
