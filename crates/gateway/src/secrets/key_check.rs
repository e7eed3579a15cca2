//! The master key's check value: a fixed text sealed with the master key and
//! kept in the database, so that a process given another key (a key file that
//! was lost and made again, the wrong `TIKTOK_DM_MASTER_KEY`) can refuse to
//! start, or to seal an account, instead of storing sessions nobody can open
//! and failing every stored account as `session_rejected`.

use secrecy::ExposeSecret as _;
use tiktok_dm_store::Store;

use super::{SealContext, Vault};
use crate::error::Result;

/// What the check value holds, sealed under [`SealContext::KeyCheck`].
const CHECK_TEXT: &str = "tiktok-dm master key check v1";

/// How a master key compares with the one a database was set up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// It opens the database's check value.
    Matches,
    /// The database had no check value (it is new, or from before key
    /// checks, and then the key opened a stored account): this key's is
    /// stored now.
    Recorded,
    /// It is not the database's key: it does not open the check value (or,
    /// in a database from before key checks, any stored account).
    Mismatch,
}

/// Compares `vault`'s key with the one the database in `store` was set up
/// with, recording it when the database has none yet. Every process that
/// seals or opens sessions with the key checks it first.
///
/// # Errors
/// The store, or sealing.
pub async fn check_master_key<S: Store>(store: &S, vault: &Vault) -> Result<KeyCheck> {
    let stored = match store.key_check().await? {
        Some(stored) => stored,
        None => {
            if !opens_a_stored_account(store, vault).await? {
                return Ok(KeyCheck::Mismatch);
            }
            let mine = vault.seal(CHECK_TEXT.as_bytes(), SealContext::KeyCheck)?;
            let stored = store.put_key_check(&mine).await?;
            if stored == mine {
                return Ok(KeyCheck::Recorded);
            }
            // Another process recorded its key first: this one must be it.
            stored
        }
    };
    let opens = vault
        .open(&stored, SealContext::KeyCheck)
        .is_ok_and(|text| text.expose_secret() == CHECK_TEXT);
    Ok(if opens {
        KeyCheck::Matches
    } else {
        KeyCheck::Mismatch
    })
}

/// Whether the database was set up with a master key already (it has a check
/// value, or stored accounts sealed with one): a missing key file must then
/// be restored, not made again.
///
/// # Errors
/// The store.
pub async fn database_has_a_key<S: Store>(store: &S) -> Result<bool> {
    Ok(store.key_check().await?.is_some() || !store.list_accounts().await?.is_empty())
}

/// Whether `vault` opens a stored account's session (true when none is
/// stored): a database from before key checks was set up with the key its
/// accounts were sealed with.
async fn opens_a_stored_account<S: Store>(store: &S, vault: &Vault) -> Result<bool> {
    let accounts = store.list_accounts().await?;
    if accounts.is_empty() {
        return Ok(true);
    }
    for account in &accounts {
        let Some(sealed) = store.account(&account.name).await? else {
            continue;
        };
        if vault
            .open(&sealed, SealContext::Account(&account.name))
            .is_ok()
        {
            return Ok(true);
        }
    }
    Ok(false)
}
