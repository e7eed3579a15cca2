//! Finding a send's conversation when its request does not give both ids:
//! a conversation id without `conversation_short_id`, or `to_uid` (the 1:1
//! conversation `0:1:<smaller uid>:<larger uid>`). The short id comes from
//! the sending account's inbox ([`crate::short_ids`]), asked with the session
//! the send goes out on, before the send is accepted: a conversation the
//! inbox does not have is answered `conversation_not_found` and nothing is
//! kept.

use tiktok_dm_client::Session;
use tiktok_dm_proto::ids::ConversationId;
use tiktok_dm_proto::message::Target;
use tiktok_dm_store::Store;

use super::conversations::{client_error, session_error};
use super::error::{ApiError, ErrorCode};
use super::input::{Address, Lookup};
use crate::accounts::{account_session, request_session};
use crate::state::AppState;

/// Whose session a send goes out with, as far as finding its conversation
/// needs: a stored account's name, or the request's own session.
pub(crate) enum SessionOf<'a> {
    Account(&'a str),
    Request(&'a str),
}

/// The target of a send to `address`, from `sender`'s inbox when the request
/// did not give it whole.
///
/// # Errors
/// `conversation_not_found` when the inbox does not have the conversation,
/// `to_uid_invalid` for the account's own uid, and the errors of reading a
/// conversation list (a refused session, TikTok unreachable).
pub(crate) async fn target<S: Store>(
    state: &AppState<S>,
    sender: SessionOf<'_>,
    address: Address,
) -> Result<Target, ApiError> {
    let lookup = match address {
        Address::Known(target) => return Ok(target),
        Address::Find(lookup) => lookup,
    };
    let (key, session) = session(state, sender).await?;
    let conversation_id = match lookup {
        Lookup::Conversation(id) => id,
        Lookup::User(uid) => {
            let own = session.identity().uid;
            if uid == own {
                return Err(ApiError::new(
                    ErrorCode::ToUidInvalid,
                    "to_uid is the sending account's own uid",
                ));
            }
            ConversationId::one_to_one(own, uid)
        }
    };
    let found = state
        .short_ids
        .find(&key, &conversation_id, || session.conversations())
        .await
        .map_err(|e| client_error(&e))?;
    match found {
        Some(found) => Ok(Target {
            conversation_id,
            conversation_short_id: found.short_id,
            // As TikTok web sends into a message request: with its inbox.
            inbox_type: found.inbox_type.unwrap_or(0),
        }),
        None => Err(ApiError::new(
            ErrorCode::ConversationNotFound,
            format!(
                "the account's inbox (direct messages and message requests) has no \
                 conversation {conversation_id}; send into a conversation the account \
                 is in, or give conversation_short_id"
            ),
        )),
    }
}

/// The pool key and pooled session a send goes out on.
async fn session<S: Store>(
    state: &AppState<S>,
    sender: SessionOf<'_>,
) -> Result<(String, Session), ApiError> {
    match sender {
        SessionOf::Account(name) => account_session(state, name)
            .await
            .map_err(|e| session_error(e, name)),
        SessionOf::Request(secret) => request_session(state, secret)
            .await
            .map_err(|e| session_error(e, "")),
    }
}
