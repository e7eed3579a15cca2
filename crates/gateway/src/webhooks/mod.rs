//! Webhooks (issue 18): an API key's endpoints, each receiving the event
//! types it lists, of the accounts its key may see, signed as the Standard
//! Webhooks specification says ([`sign`]). Creating one is shared by the API
//! and the CLI ([`create`]); where one may post is [`ssrf`]'s; the worker
//! that posts queued deliveries is [`deliver`]'s.
//!
//! The signing secret is shown once, when the webhook is created, and kept
//! sealed by the vault under [`SealContext::Webhook`] (its key id and URL:
//! the id is drawn by the store, after the secret is sealed).

pub mod deliver;
pub mod sign;
pub mod ssrf;

use secrecy::{ExposeSecret as _, SecretString};
use tiktok_dm_store::{NewWebhook, Store, Webhook};

use crate::secrets::{SealContext, Vault};

/// Every event type a webhook may receive.
pub const EVENT_TYPES: &[&str] = &[
    "message.received",
    "message.read",
    "typing",
    "reaction",
    "message.deleted",
    "message.sent",
    "message.failed",
];

/// Stands for every type of [`EVENT_TYPES`] (expanded when the webhook is
/// created; a type added in a later version is not included).
pub const ALL_EVENTS: &str = "*";

/// The most webhooks one API key may have (the store counts and stores
/// atomically, so creates at once never pass it).
pub const MAX_PER_KEY: u32 = 10;

/// Why a webhook was not created.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not one a webhook can have.
    #[error("{0}")]
    UrlInvalid(String),
    /// The URL reaches a loopback, private or reserved address.
    #[error("{0}")]
    UrlNotAllowed(String),
    /// The event list is empty or names an unknown type.
    #[error("{0}")]
    EventsInvalid(String),
    /// The key has [`MAX_PER_KEY`] webhooks already.
    #[error(
        "this API key has {MAX_PER_KEY} webhooks already (the most it may have); delete one first"
    )]
    LimitReached,
    /// The secret could not be sealed.
    #[error("the webhook's secret could not be sealed")]
    Seal,
    /// The store failed (or has no such key).
    #[error(transparent)]
    Store(#[from] tiktok_dm_store::Error),
}

impl From<ssrf::UrlRefusal> for WebhookError {
    fn from(r: ssrf::UrlRefusal) -> Self {
        match r {
            ssrf::UrlRefusal::Invalid(m) => Self::UrlInvalid(m),
            ssrf::UrlRefusal::NotAllowed(m) => Self::UrlNotAllowed(m),
        }
    }
}

/// A webhook just created, with its secret (shown this once).
pub struct Created {
    /// The stored webhook.
    pub webhook: Webhook,
    /// Its signing secret, `whsec_...`.
    pub secret: SecretString,
}

/// The event types asked for, checked: at least one, each known (or `*`
/// for all), each once in the order given.
///
/// # Errors
/// [`WebhookError::EventsInvalid`].
pub fn event_types(asked: &[String]) -> Result<Vec<String>, WebhookError> {
    if asked.is_empty() {
        return Err(WebhookError::EventsInvalid(format!(
            "events is empty; name at least one of {} (or \"*\" for all)",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for e in asked {
        let expanded: Vec<&str> = if e == ALL_EVENTS {
            EVENT_TYPES.to_vec()
        } else if EVENT_TYPES.contains(&e.as_str()) {
            vec![e.as_str()]
        } else {
            return Err(WebhookError::EventsInvalid(format!(
                "{} is not an event type; the types are {} (or \"*\" for all)",
                ssrf::shown(e),
                EVENT_TYPES.join(", ")
            )));
        };
        for t in expanded {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_owned());
            }
        }
    }
    Ok(out)
}

/// Creates a webhook of key `key_id`: checks the URL (and, unless
/// `allow_private`, where it leads) and the events, draws its secret and
/// stores it sealed.
///
/// # Errors
/// See [`WebhookError`]; [`tiktok_dm_store::Error::NotFound`] when there is
/// no such key.
pub async fn create<S: Store>(
    store: &S,
    vault: &Vault,
    key_id: i64,
    url: &str,
    events: &[String],
    allow_private: bool,
    now: i64,
) -> Result<Created, WebhookError> {
    let parsed = ssrf::parse(url)?;
    let events = event_types(events)?;
    ssrf::check_destination(&parsed, allow_private).await?;
    // Kept normalised (`HTTP://Host` is `http://host/`); the secret is sealed
    // to the URL as kept.
    let url = parsed.as_str();
    let secret = sign::new_secret();
    let secret_sealed = vault
        .seal(
            secret.expose_secret().as_bytes(),
            SealContext::Webhook(key_id, url),
        )
        .map_err(|_| WebhookError::Seal)?;
    let new = NewWebhook {
        key_id,
        url: url.to_owned(),
        events,
        secret_sealed,
    };
    let webhook = match store.create_webhook(new, MAX_PER_KEY, now).await {
        Ok(webhook) => webhook,
        Err(tiktok_dm_store::Error::LimitReached(_)) => return Err(WebhookError::LimitReached),
        Err(e) => return Err(e.into()),
    };
    Ok(Created { webhook, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn event_lists_are_checked_and_star_means_every_type() {
        assert_eq!(
            event_types(&strings(&["typing", "message.received", "typing"])).unwrap(),
            strings(&["typing", "message.received"])
        );
        assert_eq!(event_types(&strings(&["*"])).unwrap(), strings(EVENT_TYPES));
        assert!(matches!(
            event_types(&[]),
            Err(WebhookError::EventsInvalid(_))
        ));
        assert!(matches!(
            event_types(&strings(&["message.recieved"])),
            Err(WebhookError::EventsInvalid(m)) if m.contains("message.recieved")
        ));
    }
}
