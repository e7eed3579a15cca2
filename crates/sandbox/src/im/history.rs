//! cmd 301 GET_MESSAGES_BY_CONVERSATION: one page of a conversation's history,
//! newest first, from the messages the sandbox accepted there. Pages go back
//! in time by `index_in_conversation`: `anchor_index` 0 asks for the newest
//! page, any other value for the messages strictly older than it, and
//! `next_cursor` is the oldest index on the page. `direction` is not read: the
//! working client sends 1 and pages only backwards.

use tiktok_dm_proto::schema::{
    MessageBody, MessagesInConversationRequestBody, MessagesInConversationResponseBody,
    ResponseBody,
};

use super::{Action, Envelope};

/// Page size when the request gives none (or 0).
const DEFAULT_LIMIT: usize = 20;
/// Largest page served, whatever the request asks.
const MAX_LIMIT: usize = 100;

pub(super) fn handle_history(
    env: &Envelope<'_>,
    asked: &MessagesInConversationRequestBody,
) -> Action {
    let id = asked.conversation_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return env.invalid("conversation_id is missing");
    }
    // Someone else's conversation is answered as an unknown one.
    let Some(conversation) = env
        .shared
        .conversation(id)
        .filter(|c| c.conversation_id.peer_of(env.account.uid).is_some())
    else {
        return env.not_found();
    };
    let short = asked.conversation_short_id.unwrap_or_default();
    if short != 0 && short != conversation.conversation_short_id.get() {
        return env.invalid("conversation_short_id does not match conversation_id");
    }
    let anchor = asked.anchor_index.unwrap_or_default();
    if anchor < 0 {
        return env.invalid("anchor_index must not be negative");
    }
    let limit = match usize::try_from(asked.limit.unwrap_or_default()) {
        Ok(0) | Err(_) => DEFAULT_LIMIT,
        Ok(n) => n.min(MAX_LIMIT),
    };
    let (messages, has_more) = page(env, id, anchor, limit);
    let next_cursor = messages
        .last()
        .and_then(|m| m.index_in_conversation)
        .unwrap_or_default();
    env.ok(ResponseBody {
        messages_in_conversation_body: Some(MessagesInConversationResponseBody {
            messages,
            next_cursor: Some(next_cursor),
            has_more: Some(has_more),
            ..MessagesInConversationResponseBody::default()
        }),
        ..ResponseBody::default()
    })
}

/// Up to `limit` messages of `conversation_id` older than `anchor` (all when
/// it is 0), newest first, and whether older ones remain.
fn page(
    env: &Envelope<'_>,
    conversation_id: &str,
    anchor: i64,
    limit: usize,
) -> (Vec<MessageBody>, bool) {
    let state = env.shared.lock();
    // Messages are stored in the order their indexes were given out.
    let mut older = state
        .messages
        .iter()
        .rev()
        .filter(|m| m.received.conversation_id == conversation_id)
        .map(|m| &m.body)
        .filter(|b| anchor == 0 || b.index_in_conversation.unwrap_or_default() < anchor);
    let messages: Vec<MessageBody> = older.by_ref().take(limit).cloned().collect();
    let has_more = older.next().is_some();
    (messages, has_more)
}
