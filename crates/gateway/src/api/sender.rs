//! Who a send goes out as (the request's own session, sealed for it, or a
//! stored account the key may use), and the request to accept from it.

use tiktok_dm_client::compose::Outgoing;
use tiktok_dm_client::image::Image;
use tiktok_dm_client::{Credentials, Session};
use tiktok_dm_proto::message::Target;
use tiktok_dm_store::{ApiKey, NewMessage, NewRequest, Store};

use super::address::SessionOf;
use super::error::{ApiError, ErrorCode};
use crate::secrets::SealContext;
use crate::state::AppState;

/// Whose session a send goes out with.
pub(super) enum Sender {
    /// A stored account, by name.
    Account(String),
    /// The request's own session, sealed to its id, and its lane (from a
    /// digest of the session).
    Sealed(Vec<u8>, String),
}

impl Sender {
    /// The session to find a conversation with: the stored account's, or
    /// the request's own (`header`, which a sealed sender always has).
    pub(super) fn session_of<'a>(&'a self, header: Option<&'a str>) -> SessionOf<'a> {
        match self {
            Sender::Account(name) => SessionOf::Account(name),
            Sender::Sealed(..) => SessionOf::Request(header.unwrap_or_default()),
        }
    }

    /// The stored account's name.
    pub(super) fn account(&self) -> Option<&str> {
        match self {
            Sender::Account(name) => Some(name),
            Sender::Sealed(..) => None,
        }
    }
}

/// The request's own session (sealed for it), or else the stored account the
/// body names, or else the key's. A key sends only as the accounts it was
/// given (or any, if made so); an account that does not exist and one the key
/// may not use get the same answer, so a key cannot learn other names.
pub(super) async fn sender<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
    account_field: Option<String>,
    session_header: Option<&str>,
    request_id: &str,
) -> Result<Sender, ApiError> {
    if let Some(session) = session_header {
        Credentials::parse(session)
            .map_err(|e| ApiError::new(ErrorCode::SessionInvalidFormat, e.to_string()))?;
        let sealed = state
            .vault
            .seal(session.as_bytes(), SealContext::Request(request_id))
            .map_err(|e| ApiError::internal(&e))?;
        return Ok(Sender::Sealed(sealed, crate::pool::request_key(session)));
    }
    match account_field.or_else(|| key.account.clone()) {
        Some(name) if key.may_send_as(&name) && state.store.account(&name).await?.is_some() => {
            Ok(Sender::Account(name))
        }
        Some(name) => Err(ApiError::new(
            ErrorCode::AccountNotFound,
            format!("no stored account named {name:?} that this API key may send as"),
        )),
        None => Err(ApiError::new(
            ErrorCode::SessionMissing,
            "send the TikTok session in X-TikTok-Session, or name a stored account",
        )),
    }
}

/// The request to accept: its messages in the order
/// [`Outgoing::into_contents`](tiktok_dm_proto::message::Outgoing::into_contents)
/// gives, each with its client message id fixed now, under its idempotency
/// key with the hash that tells a replay from another request, its first
/// message claimed with the acceptance for `lease_ms`.
pub(super) fn new_request(
    key: &ApiKey,
    request_id: String,
    (target, outgoing): (Target, Outgoing),
    sender: Sender,
    (request_hash, idempotency_key): (String, Option<&str>),
    lease_ms: i64,
) -> NewRequest {
    let (account, session_sealed, lane) = match sender {
        Sender::Account(name) => {
            let lane = tiktok_dm_store::account_lane(&name);
            (Some(name), None, lane)
        }
        Sender::Sealed(sealed, lane) => (None, Some(sealed), lane),
    };
    let messages = outgoing
        .into_contents()
        .map(|content| NewMessage {
            client_message_id: Session::new_client_message_id(),
            content: content.map_image(Image::into_bytes),
        })
        .collect();
    NewRequest {
        id: request_id,
        api_key_id: key.id,
        idempotency_key: idempotency_key.map(str::to_owned),
        request_hash,
        account,
        session_sealed,
        lane,
        target,
        messages,
        claim_first_ms: Some(lease_ms),
    }
}
