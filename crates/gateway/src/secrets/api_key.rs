//! API keys: long random tokens with a visible prefix; only a hash is stored.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "tdm_";

/// A freshly issued key: shown to the user once, then only its hash remains.
pub struct IssuedKey {
    /// The key. Print it once; never log it.
    pub secret: SecretString,
    /// The visible prefix (the first 12 characters).
    pub prefix: String,
    /// SHA-256 of the key, what the store keeps.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a key. A fast hash is appropriate: keys are 240 random bits, so
/// there is nothing for a slow password hash to protect.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Issues a new key: `tdm_` and 40 URL-safe characters from 30 random bytes.
pub fn issue_key() -> IssuedKey {
    let random: [u8; 30] = rand::random();
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let prefix = key.chars().take(12).collect();
    let hash = hash_key(&key);
    IssuedKey {
        secret: SecretString::from(key),
        prefix,
        hash,
    }
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn verify_key(presented: &str, stored: &[u8; 32]) -> bool {
    hash_key(presented).ct_eq(stored).into()
}

impl IssuedKey {
    /// The key, for the one moment it is shown to its owner.
    pub fn reveal(&self) -> &str {
        self.secret.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_prefixed_and_verified_by_hash() {
        let a = issue_key();
        let b = issue_key();
        assert!(a.reveal().starts_with(KEY_PREFIX));
        assert_eq!(a.reveal().len(), 44);
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.prefix, &a.reveal()[..12]);
        assert!(verify_key(a.reveal(), &a.hash));
        assert!(!verify_key(b.reveal(), &a.hash));
        assert!(
            !format!("{a:?}").contains(a.reveal()),
            "Debug never shows the key"
        );
    }
}
