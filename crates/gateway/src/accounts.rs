//! A stored account's pooled client session: read from the store, opened
//! with the vault, connected once and shared by the account's listener, its
//! deliveries and the API's reads (conversations, history, media).

use secrecy::SecretString;
use tiktok_dm_client::{Error as ClientError, Session};
use tiktok_dm_store::Store;

use crate::secrets::SealContext;
use crate::state::AppState;

/// Why an account's session could not be had.
#[derive(Debug)]
pub enum SessionError {
    /// No stored account by that name.
    NotFound,
    /// The store could not be read.
    Store(tiktok_dm_store::Error),
    /// The stored session does not open (a vault key or a row problem); the
    /// cause says which, never the session.
    Unsealed(crate::Error),
    /// TikTok refused the session (or it is not a session at all); with the
    /// pool key of the session refused.
    Refused(ClientError, String),
    /// TikTok could not be reached, or the page not read.
    Connect(ClientError),
}

/// The pool key and the pooled session of the stored account `name`,
/// connecting it if no session is pooled yet.
///
/// # Errors
/// See [`SessionError`].
pub async fn account_session<S: Store>(
    state: &AppState<S>,
    name: &str,
) -> Result<(String, Session), SessionError> {
    let sealed = state
        .store
        .account(name)
        .await
        .map_err(SessionError::Store)?
        .ok_or(SessionError::NotFound)?;
    let key = crate::pool::account_key(name, &sealed);
    let secret = state
        .vault
        .open(&sealed, SealContext::Account(name))
        .map_err(SessionError::Unsealed)?;
    pooled(state, key, &secret).await
}

/// The pool key and the pooled session of a request's own session (the
/// `X-TikTok-Session` header), the one its deliveries go out on.
///
/// # Errors
/// [`SessionError::Refused`] or [`SessionError::Connect`].
pub async fn request_session<S: Store>(
    state: &AppState<S>,
    session: &str,
) -> Result<(String, Session), SessionError> {
    let key = crate::pool::request_key(session);
    let secret = SecretString::from(session.to_owned());
    pooled(state, key, &secret).await
}

/// The session pooled under `key`, connected with `secret` if there is none.
async fn pooled<S: Store>(
    state: &AppState<S>,
    key: String,
    secret: &SecretString,
) -> Result<(String, Session), SessionError> {
    let settings = &state.settings;
    let connected = state
        .pool
        .session(&key, || async {
            Session::connect(settings.client_config(secret, settings.transport)?).await
        })
        .await;
    match connected {
        Ok(session) => Ok((key, session)),
        Err(e @ (ClientError::InvalidSession(_) | ClientError::InvalidCredentials(_))) => {
            Err(SessionError::Refused(e, key))
        }
        Err(e) => Err(SessionError::Connect(e)),
    }
}
