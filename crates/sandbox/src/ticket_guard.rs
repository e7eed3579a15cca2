//! The strict check of an HTTP send's ticket guard, on when a test or a user
//! asks for it (`SandboxHandle::require_ticket_guard`, `tiktok-dm sandbox
//! --require-ticket-guard`). Written from PROTOCOL.md 2.1 and 10.1, apart from
//! the client: the five `tt-ticket-guard-*` entries follow one another in
//! `Request.headers` (public key, client data, versions "2", "0", "1"; the
//! live capture ends the list with them, the working client puts one more
//! context entry after them), the key is a P-256 point, and the query carries
//! `ztca-version=1` and a `ztca-dpop` ES256 JWT whose header names the same
//! key, bound to `POST` and the send URL, recent, and signed by that key.
//! Whether TikTok checks any of this is unknown, so the sandbox does not by
//! default.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use tiktok_dm_proto::Message as _;
use tiktok_dm_proto::schema::Request;

/// The entries, in the order the live capture has them.
const ENTRIES: [(&str, Option<&str>); 5] = [
    ("tt-ticket-guard-public-key", None),
    ("tt-ticket-guard-client-data", None),
    ("tt-ticket-guard-version", Some("2")),
    ("tt-ticket-guard-iteration-version", Some("0")),
    ("tt-ticket-guard-web-version", Some("1")),
];

/// How far a proof's `iat` may be from the sandbox's clock.
const MAX_SKEW_SECS: u64 = 300;

/// Checks a send's body and query. `host` is the `host[:port]` the send was
/// addressed to: the proof must name `http://` or `https://` on it and the
/// send's path. The error says what is wrong.
pub(crate) fn check(
    body: &[u8],
    query: &HashMap<String, String>,
    host: &str,
    now_secs: i64,
) -> Result<(), String> {
    let request = Request::decode(body).map_err(|e| format!("the body does not decode: {e}"))?;
    let key = entries_key(&request)?;
    if query.get("ztca-version").map(String::as_str) != Some("1") {
        return Err("the query has no ztca-version=1".into());
    }
    let proof = query
        .get("ztca-dpop")
        .ok_or("the query has no ztca-dpop proof")?;
    check_proof(proof, &key, host, now_secs)
}

/// The public key the five entries carry, after checking them. They must
/// follow one another in the captured order; what comes after them is not
/// checked: the live capture ends `Request.headers` with them, and the
/// working client puts its last context entry after them, and is accepted.
fn entries_key(request: &Request) -> Result<Vec<u8>, String> {
    let headers = &request.headers;
    let (first_key, _) = ENTRIES[0];
    let Some(tail) = headers
        .iter()
        .position(|e| e.key_str() == first_key)
        .and_then(|at| headers.get(at..at + ENTRIES.len()))
    else {
        return Err(format!(
            "Request.headers must carry the five tt-ticket-guard entries in order, from {first_key:?}; it has {} entries",
            headers.len()
        ));
    };
    for (entry, (key, value)) in tail.iter().zip(ENTRIES) {
        if entry.key_str() != key {
            return Err(format!(
                "Request.headers must carry the five tt-ticket-guard entries in order; found {:?} where {key:?} belongs",
                entry.key_str()
            ));
        }
        let got = entry.value.as_deref().unwrap_or_default();
        if value.is_some_and(|v| v != got) {
            return Err(format!("{key} is {got:?}, not {value:?}"));
        }
    }
    let public = tail[0].value.as_deref().unwrap_or_default();
    let point = STANDARD
        .decode(public)
        .map_err(|_| "tt-ticket-guard-public-key is not standard base64".to_string())?;
    if point.len() != 65 || point[0] != 4 || VerifyingKey::from_sec1_bytes(&point).is_err() {
        return Err("tt-ticket-guard-public-key is not an uncompressed P-256 point".into());
    }
    Ok(point)
}

fn json_part(part: &str, what: &str) -> Result<serde_json::Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the ztca-dpop {what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("the ztca-dpop {what} is not JSON"))
}

fn check_proof(proof: &str, point: &[u8], host: &str, now: i64) -> Result<(), String> {
    let parts: Vec<&str> = proof.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err("ztca-dpop is not a JWT of three parts".into());
    };
    let header = json_part(header_b64, "header")?;
    if header["alg"] != "ES256" || header["typ"] != "dpop+jwt" {
        return Err("the ztca-dpop header is not alg ES256, typ dpop+jwt".into());
    }
    let jwk = &header["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err("the ztca-dpop jwk is not an EC P-256 key".into());
    }
    let mut jwk_point = vec![4u8];
    for c in ["x", "y"] {
        let coordinate = jwk[c]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .filter(|v| v.len() == 32)
            .ok_or_else(|| format!("the ztca-dpop jwk has no 32-byte {c}"))?;
        jwk_point.extend(coordinate);
    }
    if jwk_point != point {
        return Err("the ztca-dpop jwk is not the tt-ticket-guard public key".into());
    }
    let payload = json_part(payload_b64, "payload")?;
    let send_path = format!("://{host}/v1/message/send");
    let htu = payload["htu"].as_str().unwrap_or_default();
    let names_send = ["http", "https"]
        .iter()
        .any(|scheme| htu.strip_prefix(scheme) == Some(send_path.as_str()));
    if payload["htm"] != "POST" || !names_send {
        return Err(format!(
            "the ztca-dpop proof is for {} {}, not POST to http(s){send_path}",
            payload["htm"], payload["htu"]
        ));
    }
    let iat = payload["iat"]
        .as_i64()
        .ok_or("the ztca-dpop proof has no iat")?;
    // `iat` is the sender's: a difference, not a subtraction, so no value of
    // it can overflow.
    if iat.abs_diff(now) > MAX_SKEW_SECS {
        return Err(format!(
            "the ztca-dpop proof was issued at {iat}, not about {now}"
        ));
    }
    if payload["jti"].as_str().is_none_or(str::is_empty) {
        return Err("the ztca-dpop proof has no jti".into());
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or("the ztca-dpop signature is not 64 bytes of r and s")?;
    let key = VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad key".to_string())?;
    let input = format!("{header_b64}.{payload_b64}");
    key.verify(input.as_bytes(), &signature)
        .map_err(|_| "the ztca-dpop signature does not verify with its key".to_string())
}
