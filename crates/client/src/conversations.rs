//! An account's conversations (cmd 203, inboxes 0 and 3) and the history of
//! one conversation (cmd 301), both over im-api as TikTok web asks for them
//! (PROTOCOL.md 1.11, 10.4).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::im_request;
use tiktok_dm_proto::events::{Event, ReceivedMessage, from_message};
use tiktok_dm_proto::schema::{
    ConversationInfoV2, MessageBody, MessagesInConversationRequestBody,
    MessagesPerUserInitV2RequestBody, RequestBody, Response,
};
use tiktok_dm_proto::status::classify_status;

use crate::error::{Error, Result};
use crate::session::Session;

/// The inboxes TikTok web lists: 0 direct messages, 3 message requests.
pub const LISTED_INBOXES: [i32; 2] = [0, 3];
/// Inbox pages read at most per inbox, so a server that always says "more"
/// cannot keep a listing going.
const MAX_INBOX_PAGES: usize = 50;
/// History page size asked for.
pub const HISTORY_PAGE: i32 = 50;

/// One conversation of the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConversationSummary {
    /// Conversation id.
    pub conversation_id: String,
    /// Short id (needed to send).
    #[serde(serialize_with = "tiktok_dm_proto::events::opt_id::serialize")]
    pub conversation_short_id: Option<i64>,
    /// The other participant of a 1:1 conversation.
    #[serde(serialize_with = "tiktok_dm_proto::events::opt_id::serialize")]
    pub peer_uid: Option<i64>,
    /// Inbox type (0 direct, 3 message request).
    pub inbox_type: i32,
    /// Whether it is a message request (inbox 3).
    pub message_request: bool,
    /// The newest message, when the listing carries it.
    pub last_message: Option<ReceivedMessage>,
}

/// One page of a conversation's history, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    /// Events read from the page's messages, newest first.
    pub events: Vec<Event>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    #[serde(serialize_with = "tiktok_dm_proto::events::opt_id::serialize")]
    pub next_cursor: Option<i64>,
}

fn answer_ok(response: &Response) -> Result<()> {
    match response.status_code.unwrap_or_default() {
        0 => Ok(()),
        status => {
            Err(classify_status(status, response.error_desc.as_deref().unwrap_or_default()).into())
        }
    }
}

impl Session {
    /// Lists the account's conversations: direct messages and message
    /// requests, each with its short id and newest message.
    ///
    /// # Errors
    /// As any request: [`Error::InvalidSession`], [`Error::Connect`], a
    /// refusal, or [`Error::Protocol`] for an answer without its body.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        let own = self.identity().uid;
        let mut found: BTreeMap<String, ConversationSummary> = BTreeMap::new();
        let mut newest: BTreeMap<String, MessageBody> = BTreeMap::new();
        for inbox in LISTED_INBOXES {
            let mut cursor = 0;
            for _ in 0..MAX_INBOX_PAGES {
                let page = self.inbox_page(inbox, cursor).await?;
                for c in &page.conversations {
                    if let Some(summary) = summary(c, own.get(), inbox) {
                        found
                            .entry(summary.conversation_id.clone())
                            .or_insert(summary);
                    }
                }
                for m in page.messages {
                    let Some(id) = m.conversation_id.as_deref() else {
                        continue;
                    };
                    let newer = newest
                        .get(id)
                        .is_none_or(|old| old.index_in_conversation < m.index_in_conversation);
                    if newer {
                        newest.insert(id.to_owned(), m);
                    }
                }
                match (page.has_more, page.next_cursor) {
                    (Some(true), Some(next)) if next != cursor => cursor = next,
                    _ => break,
                }
            }
        }
        for (id, m) in newest {
            let Some(summary) = found.get_mut(&id) else {
                continue;
            };
            if summary.conversation_short_id.is_none() {
                summary.conversation_short_id = m.conversation_short_id;
            }
            if let Some(Event::MessageReceived(r)) = from_message(&m, &id, Some(own)) {
                summary.last_message = Some(r);
            }
        }
        Ok(found.into_values().collect())
    }

    async fn inbox_page(
        &self,
        inbox: i32,
        cursor: i64,
    ) -> Result<tiktok_dm_proto::schema::MessagesPerUserInitV2ResponseBody> {
        let body = RequestBody {
            messages_per_user_init_v2_body: Some(MessagesPerUserInitV2RequestBody {
                cursor: Some(cursor),
                ..Default::default()
            }),
            ..RequestBody::default()
        };
        let request = self.im_request(cmd::GET_MESSAGES_BY_USER_INIT_V2, inbox, body);
        let response = self.transmit_http_first(&request).await?;
        answer_ok(&response)?;
        response
            .body
            .and_then(|b| b.messages_per_user_init_v2_body)
            .ok_or_else(|| Error::Protocol("the inbox answer has no inbox body".into()))
    }

    /// One page of a conversation's history, newest first: the newest page
    /// when `before` is `None`, else the messages older than that cursor.
    ///
    /// # Errors
    /// As [`Session::conversations`]; [`Error::InvalidInput`] for an empty
    /// conversation id.
    pub async fn history(
        &self,
        conversation_id: &str,
        conversation_short_id: Option<i64>,
        before: Option<i64>,
        limit: i32,
    ) -> Result<HistoryPage> {
        let (messages, next_cursor) = self
            .history_page(conversation_id, conversation_short_id, before, limit)
            .await?;
        let own = Some(self.identity().uid);
        let events = messages
            .iter()
            .filter_map(|m| from_message(m, conversation_id, own))
            .collect();
        Ok(HistoryPage {
            events,
            next_cursor,
        })
    }

    /// One raw page of cmd 301, newest first, and the cursor of the next.
    pub(crate) async fn history_page(
        &self,
        conversation_id: &str,
        conversation_short_id: Option<i64>,
        before: Option<i64>,
        limit: i32,
    ) -> Result<(Vec<MessageBody>, Option<i64>)> {
        if conversation_id.is_empty() {
            return Err(Error::InvalidInput("conversation_id is empty".into()));
        }
        let body = RequestBody {
            messages_in_conversation_body: Some(MessagesInConversationRequestBody {
                conversation_id: Some(conversation_id.into()),
                conversation_type: Some(1),
                conversation_short_id,
                direction: Some(1),
                anchor_index: Some(before.unwrap_or_default()),
                limit: Some(limit.clamp(1, 100)),
                ..Default::default()
            }),
            ..RequestBody::default()
        };
        let request = self.im_request(cmd::GET_MESSAGES_BY_CONVERSATION, 0, body);
        let response = self.transmit_http_first(&request).await?;
        answer_ok(&response)?;
        let page = response
            .body
            .and_then(|b| b.messages_in_conversation_body)
            .ok_or_else(|| Error::Protocol("the history answer has no history body".into()))?;
        let next_cursor = page
            .next_cursor
            .filter(|c| *c > 0 && page.has_more == Some(true));
        Ok((page.messages, next_cursor))
    }

    /// An IM request of this session with the next sequence id.
    pub(crate) fn im_request(
        &self,
        command: i32,
        inbox: i32,
        body: RequestBody,
    ) -> tiktok_dm_proto::schema::Request {
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        im_request(
            command,
            seq,
            inbox,
            body,
            Vec::new(),
            &self.inner.identity.wid,
        )
    }
}

fn summary(c: &ConversationInfoV2, own: i64, inbox: i32) -> Option<ConversationSummary> {
    let id = c.conversation_id.as_deref()?.to_owned();
    let inbox_type = c.inbox_type.unwrap_or(inbox);
    let peer_uid = tiktok_dm_proto::ids::ConversationId::parse(&id)
        .ok()
        .and_then(|cid| cid.participants())
        .map(|(a, b)| if a.get() == own { b.get() } else { a.get() })
        .or_else(|| {
            c.first_page_participants
                .as_ref()?
                .participants
                .iter()
                .filter_map(|p| p.user_id)
                .find(|uid| *uid != own)
        });
    Some(ConversationSummary {
        conversation_short_id: c.conversation_short_id,
        peer_uid,
        inbox_type,
        message_request: inbox_type == 3,
        last_message: None,
        conversation_id: id,
    })
}
