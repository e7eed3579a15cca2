//! What TikTok web adds to an HTTP send (PROTOCOL.md 2.1, 10.1): five
//! `tt-ticket-guard-*` entries in `Request.headers` and a `ztca-dpop` proof in
//! the query, both from one P-256 key pair made fresh for the session.
//!
//! The working open-source client sends the public key with empty client data,
//! and an ES256 DPoP JWT (RFC 9449 shape) bound to the method and the URL
//! without its query. Whether TikTok checks either is unknown; it accepts
//! them in that form, so we send them in that form.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use tiktok_dm_proto::codec::{SplicedField, ticket_guard_headers};

use crate::error::{Error, Result};

/// A session's ticket-guard key and what is derived from it once.
pub(crate) struct TicketGuard {
    key: SigningKey,
    /// The JWT header, base64url-encoded (it holds the public key as a JWK).
    jwt_header: String,
    /// The five entries, encoded to be spliced after the context headers.
    entries: SplicedField,
}

impl std::fmt::Debug for TicketGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketGuard").finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TicketGuard {
    /// A fresh key pair from the thread's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Protocol`] if no valid key came out of 16 draws (a draw is
    /// invalid with probability about 2^-32).
    pub(crate) fn generate() -> Result<Self> {
        for _ in 0..16 {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = SigningKey::from_bytes(&bytes.into()) {
                return Ok(Self::from_key(key));
            }
        }
        Err(Error::Protocol(
            "could not draw a P-256 key for the ticket guard".into(),
        ))
    }

    fn from_key(key: SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| c.map_or_else(String::new, |v| b64url(v));
        // Keys in the order Go's encoding/json writes a map: sorted.
        let header = serde_json::json!({
            "alg": "ES256",
            "jwk": {
                "crv": "P-256",
                "kty": "EC",
                "x": coordinate(point.x()),
                "y": coordinate(point.y()),
            },
            "typ": "dpop+jwt",
        });
        let public_key = STANDARD.encode(point.as_bytes());
        Self {
            key,
            jwt_header: b64url(header.to_string().as_bytes()),
            entries: SplicedField::request_headers(&ticket_guard_headers(&public_key)),
        }
    }

    /// The public key as the entries and HTTP headers carry it: standard
    /// base64 of the 65-byte uncompressed point.
    pub(crate) fn public_key(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// `request` (already carrying the context headers) with the five entries
    /// after them.
    pub(crate) fn add_entries(&self, encoded_request: Vec<u8>) -> Vec<u8> {
        self.entries.splice_into(encoded_request)
    }

    /// A DPoP proof for `method` on `url` (no query), issued at `unix_secs`.
    pub(crate) fn dpop(&self, method: &str, url: &str, unix_secs: u64) -> String {
        let jti: [u8; 32] = rand::random();
        let payload = serde_json::json!({
            "htm": method,
            "htu": url,
            "iat": unix_secs,
            "jti": b64url(&jti),
        });
        let signing_input = format!(
            "{}.{}",
            self.jwt_header,
            b64url(payload.to_string().as_bytes())
        );
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&signature.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn json_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_dpop_proof_verifies_with_the_key_in_its_own_header() {
        let guard = TicketGuard::generate().unwrap();
        let url = "https://im-api-sg.tiktok.com/v1/message/send";
        let jwt = guard.dpop("POST", url, 1_790_000_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = json_part(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(
            (header["jwk"]["crv"].as_str(), header["jwk"]["kty"].as_str()),
            (Some("P-256"), Some("EC"))
        );
        let payload = json_part(parts[1]);
        assert_eq!(
            (payload["htm"].as_str(), payload["htu"].as_str()),
            (Some("POST"), Some(url))
        );
        assert_eq!(payload["iat"], 1_790_000_000);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(payload["jti"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        // The verifier rebuilds the key from the JWK alone.
        let mut point = vec![4u8];
        for c in ["x", "y"] {
            point.extend(
                URL_SAFE_NO_PAD
                    .decode(header["jwk"][c].as_str().unwrap())
                    .unwrap(),
            );
        }
        assert_eq!(STANDARD.encode(&point), guard.public_key());
        let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        key.verify(input.as_bytes(), &signature).unwrap();
        assert!(key.verify(b"tampered", &signature).is_err());
    }

    #[test]
    fn every_session_draws_its_own_key() {
        let a = TicketGuard::generate().unwrap();
        let b = TicketGuard::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(STANDARD.decode(a.public_key()).unwrap().len(), 65);
    }
}
