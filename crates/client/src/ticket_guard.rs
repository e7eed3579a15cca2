//! What TikTok web adds to an HTTP send (PROTOCOL.md 2.1, 10.1): five
//! `tt-ticket-guard-*` entries in `Request.headers` and a `ztca-dpop` proof in
//! the query, both from one P-256 key pair made fresh for the session.
//!
//! The working open-source client sends the public key with empty client data,
//! and an ES256 DPoP JWT (RFC 9449 shape) bound to the method and the URL
//! without its query. Whether TikTok checks either is unknown; it accepts
//! them in that form, so we send them in that form.
//!
//! Signing is `ring`'s (already here for TLS): about 25 µs a proof against
//! about 200 µs with RustCrypto's `p256`, and every HTTP send makes one. The
//! tests and the sandbox verify with `p256`, an implementation of their own.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use tiktok_dm_proto::codec::{SplicedField, ticket_guard_headers};

use crate::error::{Error, Result};

/// A session's ticket-guard key and what is derived from it once.
pub(crate) struct TicketGuard {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// Standard base64 of the 65-byte uncompressed point, made once.
    public_key: String,
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
    /// A fresh key pair from the operating system's random source.
    ///
    /// # Errors
    /// [`Error::Protocol`] if no key could be drawn.
    pub(crate) fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let failed = |_| Error::Protocol("could not draw a P-256 key for the ticket guard".into());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(failed)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| Error::Protocol("the drawn P-256 key does not load".into()))?;
        // 0x04 ‖ x ‖ y, each coordinate 32 bytes.
        let point = key.public_key().as_ref();
        let (x, y) = point.get(1..33).zip(point.get(33..65)).ok_or_else(|| {
            Error::Protocol("the P-256 public key is not an uncompressed point".into())
        })?;
        // Keys in the order Go's encoding/json writes a map: sorted.
        let header = serde_json::json!({
            "alg": "ES256",
            "jwk": {"crv": "P-256", "kty": "EC", "x": b64url(x), "y": b64url(y)},
            "typ": "dpop+jwt",
        });
        let public_key = STANDARD.encode(point);
        Ok(Self {
            jwt_header: b64url(header.to_string().as_bytes()),
            entries: SplicedField::request_headers(&ticket_guard_headers(&public_key)),
            public_key,
            key,
            rng,
        })
    }

    /// The public key as the entries and HTTP headers carry it: standard
    /// base64 of the 65-byte uncompressed point.
    pub(crate) fn public_key(&self) -> &str {
        &self.public_key
    }

    /// `request` (already carrying the context headers) with the five entries
    /// after them.
    pub(crate) fn add_entries(&self, encoded_request: Vec<u8>) -> Vec<u8> {
        self.entries.splice_into(encoded_request)
    }

    /// A DPoP proof for `method` on `url` (no query), issued at `unix_secs`.
    ///
    /// # Errors
    /// [`Error::Protocol`] if signing fails (the random source failed).
    pub(crate) fn dpop(&self, method: &str, url: &str, unix_secs: u64) -> Result<String> {
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
        // The FIXED encoding is r ‖ s, 32 bytes each: what JWS ES256 wants.
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| Error::Protocol("could not sign the ztca-dpop proof".into()))?;
        Ok(format!("{signing_input}.{}", b64url(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};

    fn json_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_dpop_proof_verifies_with_the_key_in_its_own_header() {
        let guard = TicketGuard::generate().unwrap();
        let url = "https://im-api-sg.tiktok.com/v1/message/send";
        let jwt = guard.dpop("POST", url, 1_790_000_000).unwrap();
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
