//! Administration shared by the CLI and the admin API: issuing and revoking API
//! keys, storing accounts (sealed), and asking TikTok whether a session works.

use serde::Serialize;
use tiktok_dm_client::{Credentials, Error as ClientError, Session, TransportMode};
use tiktok_dm_store::{ApiKey, NewApiKey, Store};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::secrets::{IssuedKey, SealContext, Vault, issue_key};

/// What a new key should be.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// A unique name.
    pub name: String,
    /// Messages per UTC day.
    pub daily_limit: Option<u32>,
    /// Messages per UTC month.
    pub monthly_limit: Option<u32>,
    /// The stored account the key sends as when a request names none; it
    /// may also send as it (the first of `accounts` when both are given).
    #[serde(default)]
    pub account: Option<String>,
    /// The stored accounts the key may send as.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// May send as any stored account (then `account` is only its default).
    #[serde(default)]
    pub any_account: bool,
}

impl KeySpec {
    /// `account`, then `accounts`, each once.
    fn all_accounts(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for a in self.account.iter().chain(&self.accounts) {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }
}

/// Names of keys and accounts: 1–64 of `A-Z a-z 0-9 . _ -`, so they are safe in
/// URLs, logs and shell commands.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // A long name is not echoed whole: an answer stays small whatever
        // was sent.
        let shown = if name.chars().count() > 64 {
            let start: String = name.chars().take(64).collect();
            format!("{start:?}... ({} bytes)", name.len())
        } else {
            format!("{name:?}")
        };
        Err(Error::Invalid(format!(
            "{what} name {shown} must be 1 to 64 characters of letters, digits, '.', '_' and '-'"
        )))
    }
}

/// Issues a key and stores its hash. The returned [`IssuedKey`] is the only
/// place the key exists; show it once.
///
/// # Errors
/// A bad name or zero limit, an unknown account, a duplicate name, or the store.
pub async fn create_key<S: Store>(
    store: &S,
    spec: KeySpec,
    now: i64,
) -> Result<(IssuedKey, ApiKey)> {
    check_name("key", &spec.name)?;
    if spec.daily_limit == Some(0) || spec.monthly_limit == Some(0) {
        return Err(Error::Invalid(
            "a limit must be at least 1 (leave it out for no limit)".into(),
        ));
    }
    let accounts = spec.all_accounts();
    for account in &accounts {
        check_name("account", account)?;
        if store.account(account).await?.is_none() {
            return Err(Error::NotFound(format!(
                "no stored account named {account:?}; add it first"
            )));
        }
    }
    let issued = issue_key();
    let key = store
        .create_api_key(
            NewApiKey {
                name: spec.name,
                prefix: issued.prefix.clone(),
                key_hash: issued.hash,
                daily_limit: spec.daily_limit,
                monthly_limit: spec.monthly_limit,
                accounts,
                any_account: spec.any_account,
            },
            now,
        )
        .await?;
    Ok((issued, key))
}

/// Checks a session's form, seals it under `account:NAME` and stores it;
/// with `listen` given, also switches the account's listening (without it a
/// new account listens and a replaced one keeps its switch). Answers whether
/// the account is listened to now.
///
/// Switching off goes first, so a replaced session is never listened to
/// against the caller's wish. A new account exists a moment before its
/// switch is written: a gateway rescanning in between starts a listener and
/// stops it at its next rescan.
///
/// # Errors
/// A bad name, a session that is not a TikTok session, sealing, or the store.
pub async fn put_account<S: Store>(
    store: &S,
    vault: &Vault,
    name: &str,
    session: &str,
    listen: Option<bool>,
    now: i64,
) -> Result<bool> {
    check_name("account", name)?;
    Credentials::parse(session.trim()).map_err(|e| Error::Invalid(e.to_string()))?;
    let sealed = vault.seal(session.trim().as_bytes(), SealContext::Account(name))?;
    let existed_off = listen == Some(false) && store.set_account_listen(name, false).await?;
    store.put_account(name, &sealed, now).await?;
    match listen {
        Some(listen) => {
            if !existed_off {
                store.set_account_listen(name, listen).await?;
            }
            Ok(listen)
        }
        None => Ok(store
            .list_accounts()
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .is_none_or(|a| a.listen)),
    }
}

/// Switches listening for a stored account's DMs on or off. A running
/// gateway's supervisor follows within its rescan
/// ([`crate::inbound::RESCAN`]): off stops the account's listener (its
/// session stays pooled for sends until idle); on starts one, which catches
/// up from the account's saved cursors what came meanwhile.
///
/// # Errors
/// No stored account by that name, or the store.
pub async fn set_listen<S: Store>(store: &S, name: &str, listen: bool) -> Result<()> {
    if store.set_account_listen(name, listen).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no stored account named {name:?}")))
    }
}

/// What TikTok said about a stored session.
#[derive(Clone, Debug, Serialize)]
pub struct AccountCheck {
    /// The account.
    pub account: String,
    /// Whether TikTok accepts the session now.
    pub ok: bool,
    /// The account's uid, when accepted.
    pub uid: Option<String>,
    /// The @handle, when TikTok gave one.
    pub unique_id: Option<String>,
    /// Why not: `session_rejected`, or `upstream_unavailable` when TikTok could
    /// not be asked (the session may still be good).
    pub code: Option<&'static str>,
    /// The reason in words.
    pub message: Option<String>,
}

/// Asks TikTok (or the sandbox) whether a stored account's session is accepted:
/// it reads the account's identity from the web page with the session, the
/// step every send starts with, and opens no socket.
///
/// # Errors
/// No such account, a session that does not unseal, or the store.
pub async fn check_account<S: Store>(
    store: &S,
    vault: &Vault,
    settings: &Settings,
    name: &str,
) -> Result<AccountCheck> {
    let sealed = store
        .account(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no stored account named {name:?}")))?;
    let secret = vault.open(&sealed, SealContext::Account(name))?;
    let mut check = AccountCheck {
        account: name.to_owned(),
        ok: false,
        uid: None,
        unique_id: None,
        code: None,
        message: None,
    };
    let connected =
        async { Session::connect(settings.client_config(&secret, TransportMode::Http)?).await }
            .await;
    match connected {
        Ok(session) => {
            check.ok = true;
            check.uid = Some(session.identity().uid.to_string());
            check.unique_id = session.identity().unique_id.clone();
            session.close();
        }
        Err(e @ (ClientError::InvalidSession(_) | ClientError::InvalidCredentials(_))) => {
            check.code = Some("session_rejected");
            check.message = Some(e.to_string());
        }
        Err(e) => {
            check.code = Some("upstream_unavailable");
            check.message = Some(e.to_string());
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn a_long_bad_name_is_not_echoed_whole() {
        let long = "x".repeat(100_000);
        let message = check_name("account", &long).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
        assert!(message.contains("(100000 bytes)"), "{message}");
        let short = check_name("key", "a b").unwrap_err().to_string();
        assert!(short.contains("\"a b\""), "{short}");
        assert!(check_name("key", "shop-1.a_b").is_ok());
    }
}
