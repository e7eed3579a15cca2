//! Standard Webhooks signing (<https://www.standardwebhooks.com>): a secret
//! `whsec_` + base64 of 32 random bytes, and the `webhook-signature` header
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! secret's decoded bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the standard base64 of 32 random bytes.
pub fn new_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The signing key of a secret: the bytes its base64 part decodes to.
/// `None` for a secret not of that form (never one the gateway made).
pub fn signing_key(secret: &SecretString) -> Option<Vec<u8>> {
    let encoded = secret.expose_secret().strip_prefix(SECRET_PREFIX)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `webhook-signature` header's value for a message `id` sent at
/// `timestamp` (Unix seconds) with `body`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` never fails for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_example_signs_as_published() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let key = signing_key(&secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_32_random_bytes() {
        let a = new_secret();
        assert_eq!(signing_key(&a).unwrap().len(), 32);
        assert_ne!(a.expose_secret(), new_secret().expose_secret());
        assert!(signing_key(&SecretString::from("nope".to_owned())).is_none());
    }
}
