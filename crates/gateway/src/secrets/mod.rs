//! API keys, the vault for TikTok sessions, and the master key's check value.

mod api_key;
mod key_check;
mod vault;

pub use api_key::{IssuedKey, KEY_PREFIX, hash_key, issue_key, verify_key};
pub use key_check::{KeyCheck, check_master_key, database_has_a_key};
pub use vault::{MASTER_KEY_ENV, SealContext, Vault};
