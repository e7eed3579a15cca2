//! The sandbox's own AWS4-HMAC-SHA256 verifier, written separately from the
//! client's signer so that a shared mistake cannot make the tests agree with
//! themselves. It recomputes the signature from what arrived: the raw query, the
//! headers named in `SignedHeaders`, and the body.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Credentials;

/// Why a signature was refused (the message goes into the JSON error).
pub(crate) type Refusal = (&'static str, String);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn encode(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes a query key or value (bytes that are not an escape stay).
pub(super) fn decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            // Byte slices, not str slices: a multi-byte character may follow '%'.
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Sorted, re-encoded query.
fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn parse_authorization(value: &str) -> Option<(String, Vec<String>, String, String)> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.split(';').map(str::to_owned).collect::<Vec<_>>()),
            "Signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let credential = credential?;
    let (access_key, scope) = credential.split_once('/')?;
    Some((access_key.to_owned(), signed?, signature?, scope.to_owned()))
}

/// The parts of an arrived request that the signature covers.
pub(crate) struct Arrived<'a> {
    pub(crate) method: &'a str,
    pub(crate) raw_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// Checks a signed upload-API request. Returns the credentials on success.
pub(crate) fn verify(
    arrived: &Arrived<'_>,
    lookup: impl Fn(&str) -> Option<Credentials>,
    expected_service: &str,
    region: &str,
    now_ms: u64,
) -> Result<Credentials, Refusal> {
    let Arrived {
        method,
        raw_query,
        headers,
        body,
    } = *arrived;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let auth = header("authorization").ok_or((
        "MissingAuthenticationToken",
        "no Authorization header".into(),
    ))?;
    let (access_key, signed, signature, scope) = parse_authorization(auth).ok_or((
        "InvalidAuthorization",
        "Authorization is not AWS4-HMAC-SHA256".into(),
    ))?;
    let creds = lookup(&access_key).ok_or(("InvalidAccessKey", "unknown access key".into()))?;
    if now_ms > creds.expires_ms {
        return Err(("ExpiredToken", "the upload credentials have expired".into()));
    }
    if header("x-amz-security-token") != Some(creds.session_token.as_str()) {
        return Err((
            "InvalidSecurityToken",
            "x-amz-security-token does not match the access key".into(),
        ));
    }
    let scope_parts: Vec<&str> = scope.split('/').collect();
    let [date, scope_region, service, "aws4_request"] = scope_parts.as_slice() else {
        return Err((
            "InvalidCredentialScope",
            "malformed credential scope".into(),
        ));
    };
    if *scope_region != region || *service != expected_service {
        return Err((
            "InvalidCredentialScope",
            format!("scope must be {region}/{expected_service}"),
        ));
    }
    let amz_date = header("x-amz-date").ok_or(("MissingDate", "no X-Amz-Date".into()))?;
    if !amz_date.starts_with(date) {
        return Err((
            "InvalidCredentialScope",
            "scope date differs from X-Amz-Date".into(),
        ));
    }
    for required in ["x-amz-date", "x-amz-security-token"] {
        if !signed.iter().any(|s| s == required) {
            return Err((
                "SignatureDoesNotMatch",
                format!("{required} must be signed"),
            ));
        }
    }
    let payload_hash = hex(&Sha256::digest(body));
    if method == "POST" && header("x-amz-content-sha256") != Some(payload_hash.as_str()) {
        return Err((
            "SignatureDoesNotMatch",
            "x-amz-content-sha256 does not match the body".into(),
        ));
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        let value = header(name).ok_or((
            "SignatureDoesNotMatch",
            format!("signed header {name} is missing"),
        ))?;
        canonical_headers.push_str(&format!(
            "{name}:{}\n",
            value.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let canonical = format!(
        "{method}\n/\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        canonical_query(raw_query),
        signed.join(";")
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = mac(format!("AWS4{}", creds.secret_access_key).as_bytes(), date);
    for part in [*scope_region, *service, "aws4_request"] {
        key = mac(&key, part);
    }
    let expected = hex(&mac(&key, &to_sign));
    let same = expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err((
            "SignatureDoesNotMatch",
            "the request signature does not match".into(),
        ));
    }
    Ok(creds)
}
