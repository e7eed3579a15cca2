//! API keys and the vault for TikTok sessions.

mod api_key;
mod vault;

pub use api_key::{IssuedKey, KEY_PREFIX, hash_key, issue_key, verify_key};
pub use vault::{MASTER_KEY_ENV, SealContext, Vault};
