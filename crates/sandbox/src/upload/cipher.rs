//! The `cipher_v2` encryption of committed private images (PROTOCOL.md 10.3
//! step 6): AES-256-GCM under a fresh random 32-byte key, stored as
//! nonce (12) ‖ ciphertext ‖ tag (16). The key travels as 64 lowercase hex.

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use rand::Rng as _;

/// Length of the AES-GCM nonce at the start of a blob.
const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag at the end of a blob.
const TAG_LEN: usize = 16;

/// A blob and the hex key that opens it.
pub(crate) struct Sealed {
    pub(crate) blob: Vec<u8>,
    pub(crate) key_hex: String,
}

/// Encrypts `plain` under a fresh random key and nonce. `None` only if the
/// cipher refuses the input (larger than AES-GCM allows).
pub(crate) fn seal(plain: &[u8]) -> Option<Sealed> {
    let mut key = [0u8; 32];
    let mut nonce = [0u8; NONCE_LEN];
    let mut rng = rand::rng();
    rng.fill(&mut key);
    rng.fill(&mut nonce);
    let cipher = Aes256Gcm::new_from_slice(&key).ok()?;
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), plain).ok()?;
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Some(Sealed {
        blob,
        key_hex: tiktok_dm_proto::access_key::hex(&key),
    })
}

/// Decrypts `blob` with the hex key `key_hex` (either case). `None` when the
/// key is not 64 hex digits, the blob is too short, or the tag does not match.
pub(crate) fn open(key_hex: &str, blob: &[u8]) -> Option<Vec<u8>> {
    let key = decode_key(key_hex)?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new_from_slice(&key).ok()?;
    cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()
}

fn decode_key(key_hex: &str) -> Option<[u8; 32]> {
    let digits = key_hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_blob_opens_with_its_key_and_not_with_another() {
        let sealed = seal(b"an image").unwrap();
        assert_eq!(sealed.blob.len(), NONCE_LEN + 8 + TAG_LEN);
        assert_eq!(sealed.key_hex.len(), 64);
        assert!(
            sealed
                .key_hex
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        );
        assert_eq!(open(&sealed.key_hex, &sealed.blob).unwrap(), b"an image");
        assert_eq!(
            open(&sealed.key_hex.to_uppercase(), &sealed.blob).unwrap(),
            b"an image"
        );
        let other = seal(b"x").unwrap();
        assert_eq!(open(&other.key_hex, &sealed.blob), None);
    }

    #[test]
    fn malformed_keys_and_short_blobs_do_not_open() {
        let sealed = seal(b"an image").unwrap();
        assert_eq!(open("00", &sealed.blob), None);
        assert_eq!(open(&"zz".repeat(32), &sealed.blob), None);
        assert_eq!(open(&"é".repeat(32), &sealed.blob), None);
        assert_eq!(open(&sealed.key_hex, &sealed.blob[..20]), None);
    }
}
