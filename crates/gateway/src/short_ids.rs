//! Conversation short ids found from an account's inbox, for sends that give
//! only a conversation id or a user id (`POST /v1/messages` without
//! `conversation_short_id`).
//!
//! One listing of a session's inbox (inboxes 0 and 3, every page) fills the
//! short ids of all its conversations at once. A short id never changes for a
//! conversation, so a found one is kept for as long as the session is pooled
//! here. A conversation the listing does not have is asked again only after
//! [`RELIST_AFTER`]: a burst of sends to an unknown conversation costs TikTok
//! one listing, not one each. Lookups of one session wait for each other, so
//! concurrent sends to a cold session list it once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tiktok_dm_client::ConversationSummary;
use tiktok_dm_proto::ids::{ConversationId, ConversationShortId};

/// How long a listing that lacks a conversation answers "not found" for it
/// before the inbox is listed again.
pub const RELIST_AFTER: Duration = Duration::from_secs(10);

/// Sessions whose listings are kept; past it, the listings nobody is reading
/// are dropped (a later send lists its inbox again).
const MAX_SESSIONS: usize = 10_000;

/// A conversation's short id and, once a listing has shown it, its inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The short id.
    pub short_id: ConversationShortId,
    /// Its inbox type (0 direct, 3 message request); `None` when only a
    /// received message told the short id.
    pub inbox_type: Option<i32>,
    /// When a received message told it (`None`: from a listing).
    learned_at: Option<Instant>,
}

/// What one session's inbox listing found.
#[derive(Default)]
struct Listing {
    listed_at: Option<Instant>,
    found: HashMap<String, Found>,
}

/// The short ids found per pooled session (keyed like [`crate::pool`]).
#[derive(Default)]
pub struct ShortIds {
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Listing>>>>,
}

impl ShortIds {
    /// The short id of `conversation` in the inbox of the session pooled as
    /// `session_key`: remembered, or found by `list` (called at most once).
    /// The inbox is listed when the conversation is unknown and the last
    /// listing is older than [`RELIST_AFTER`], or when only a received
    /// message told its short id after the last listing (the listing tells
    /// its inbox type). `None` when the inbox does not have it.
    ///
    /// # Errors
    /// Whatever `list` fails with; nothing is remembered then.
    pub async fn find<E, F, Fut>(
        &self,
        session_key: &str,
        conversation: &ConversationId,
        list: F,
    ) -> Result<Option<Found>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<ConversationSummary>, E>>,
    {
        let listing = self.listing(session_key);
        let mut listing = listing.lock().await;
        let known = listing.found.get(conversation.as_str()).copied();
        let relist = match known {
            Some(Found {
                inbox_type: Some(_),
                ..
            }) => false,
            Some(Found {
                learned_at: Some(learned),
                ..
            }) => listing.listed_at.is_none_or(|at| at < learned),
            Some(_) => false,
            None => listing
                .listed_at
                .is_none_or(|at| at.elapsed() >= RELIST_AFTER),
        };
        if !relist {
            return Ok(known);
        }
        let conversations = list().await?;
        listing.listed_at = Some(Instant::now());
        for c in conversations {
            let short = c
                .conversation_short_id
                .and_then(|s| ConversationShortId::new(s).ok());
            if let Some(short_id) = short {
                let found = Found {
                    short_id,
                    inbox_type: Some(c.inbox_type),
                    learned_at: None,
                };
                listing.found.insert(c.conversation_id, found);
            }
        }
        Ok(listing.found.get(conversation.as_str()).copied().or(known))
    }

    /// Remembers that `conversation` has `short_id` in the inbox of the
    /// session pooled as `session_key`, as a received message tells: a send
    /// to a conversation that began after the last listing then finds it.
    pub async fn learn(
        &self,
        session_key: &str,
        conversation: &str,
        short_id: ConversationShortId,
    ) {
        let listing = self.listing(session_key);
        let mut listing = listing.lock().await;
        listing
            .found
            .entry(conversation.to_owned())
            .or_insert(Found {
                short_id,
                inbox_type: None,
                learned_at: Some(Instant::now()),
            });
    }

    /// The listing of `session_key`, made if there is none.
    fn listing(&self, session_key: &str) -> Arc<tokio::sync::Mutex<Listing>> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(session_key) {
            sessions.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(sessions.entry(session_key.to_owned()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn summary(id: &str, short: Option<i64>) -> ConversationSummary {
        ConversationSummary {
            conversation_id: id.to_owned(),
            conversation_short_id: short,
            peer_uid: None,
            inbox_type: 0,
            message_request: false,
            last_message: None,
        }
    }

    #[tokio::test]
    async fn one_listing_finds_every_conversation_and_a_miss_is_not_relisted_at_once() {
        let ids = ShortIds::default();
        let listings = AtomicUsize::new(0);
        let list = || async {
            listings.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(vec![
                summary("0:1:1:2", Some(7)),
                summary("0:1:1:3", Some(8)),
                summary("0:1:1:4", None),
            ])
        };
        let a = ConversationId::parse("0:1:1:2").unwrap();
        let b = ConversationId::parse("0:1:1:3").unwrap();
        let missing = ConversationId::parse("0:1:1:9").unwrap();
        let unknown_short = ConversationId::parse("0:1:1:4").unwrap();
        let a_found = ids.find("s", &a, list).await.unwrap().unwrap();
        assert_eq!((a_found.short_id.get(), a_found.inbox_type), (7, Some(0)));
        assert_eq!(
            ids.find("s", &b, list)
                .await
                .unwrap()
                .unwrap()
                .short_id
                .get(),
            8
        );
        assert_eq!(ids.find("s", &missing, list).await.unwrap(), None);
        assert_eq!(ids.find("s", &unknown_short, list).await.unwrap(), None);
        assert_eq!(listings.load(Ordering::SeqCst), 1);
        // Another session lists its own inbox.
        assert!(ids.find("t", &a, list).await.unwrap().is_some());
        assert_eq!(listings.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_conversation_learned_after_the_last_listing_is_found_and_listed_once_for_its_inbox()
    {
        let ids = ShortIds::default();
        let listings = AtomicUsize::new(0);
        let new = ConversationId::parse("0:1:1:5").unwrap();
        let list = |with_new: bool| {
            let listings = &listings;
            move || async move {
                listings.fetch_add(1, Ordering::SeqCst);
                let mut all = vec![summary("0:1:1:2", Some(7))];
                if with_new {
                    let mut request = summary("0:1:1:5", Some(9));
                    request.inbox_type = 3;
                    all.push(request);
                }
                Ok::<_, ()>(all)
            }
        };
        let old = ConversationId::parse("0:1:1:2").unwrap();
        assert!(ids.find("s", &old, list(false)).await.unwrap().is_some());
        // A stranger writes: the listener learns the short id at once.
        ids.learn("s", new.as_str(), ConversationShortId::new(9).unwrap())
            .await;
        let found = ids.find("s", &new, list(true)).await.unwrap().unwrap();
        assert_eq!((found.short_id.get(), found.inbox_type), (9, Some(3)));
        assert_eq!(
            listings.load(Ordering::SeqCst),
            2,
            "listed again for its inbox"
        );
        // A listing that fails to show it still leaves the learned short id.
        let other = ConversationId::parse("0:1:1:6").unwrap();
        ids.learn("s", other.as_str(), ConversationShortId::new(11).unwrap())
            .await;
        let found = ids.find("s", &other, list(true)).await.unwrap().unwrap();
        assert_eq!((found.short_id.get(), found.inbox_type), (11, None));
        assert_eq!(listings.load(Ordering::SeqCst), 3);
        assert_eq!(
            ids.find("s", &other, list(true))
                .await
                .unwrap()
                .unwrap()
                .short_id
                .get(),
            11
        );
        assert_eq!(listings.load(Ordering::SeqCst), 3, "not listed again");
    }

    #[tokio::test]
    async fn a_failed_listing_is_not_remembered() {
        let ids = ShortIds::default();
        let a = ConversationId::parse("0:1:1:2").unwrap();
        let failed = ids.find("s", &a, || async { Err::<Vec<_>, _>("down") });
        assert_eq!(failed.await, Err("down"));
        let found = ids.find("s", &a, || async {
            Ok::<_, &str>(vec![summary("0:1:1:2", Some(7))])
        });
        assert_eq!(found.await.unwrap().unwrap().short_id.get(), 7);
    }
}
