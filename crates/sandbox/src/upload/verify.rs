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

/// Percent-encodes every byte but the unreserved ones (RFC 3986).
pub(crate) fn encode(s: &[u8]) -> String {
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

/// The parts of an `Authorization` header the verifier uses.
struct Authorization {
    access_key: String,
    signed: Vec<String>,
    signature: String,
    scope: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn parse_authorization(value: &str) -> Option<Authorization> {
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
    Some(Authorization {
        access_key: access_key.to_owned(),
        signed: signed?,
        signature: signature?,
        scope: scope.to_owned(),
    })
}

/// The parts of an arrived request that the signature covers.
pub(crate) struct Arrived<'a> {
    pub(crate) method: &'a str,
    pub(crate) raw_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

impl Arrived<'_> {
    /// A header's value, if it is present and visible ASCII.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A credential scope, `{date}/{region}/{service}/aws4_request`.
struct Scope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// Checks a signed upload-API request. Returns the credentials on success.
/// The checks run in a fixed order, so each refusal names the first problem.
pub(crate) fn verify(
    arrived: &Arrived<'_>,
    lookup: impl Fn(&str) -> Option<Credentials>,
    expected_service: &str,
    region: &str,
    now_ms: u64,
) -> Result<Credentials, Refusal> {
    let auth = arrived.header("authorization").ok_or((
        "MissingAuthenticationToken",
        "no Authorization header".into(),
    ))?;
    let auth = parse_authorization(auth).ok_or((
        "InvalidAuthorization",
        "Authorization is not AWS4-HMAC-SHA256".into(),
    ))?;
    let creds = check_credentials(arrived, &auth.access_key, lookup, now_ms)?;
    let scope = check_scope(&auth.scope, region, expected_service)?;
    let amz_date = arrived
        .header("x-amz-date")
        .ok_or(("MissingDate", "no X-Amz-Date".into()))?;
    if !amz_date.starts_with(scope.date) {
        return Err((
            "InvalidCredentialScope",
            "scope date differs from X-Amz-Date".into(),
        ));
    }
    let payload_hash = check_payload(arrived, &auth.signed)?;
    let canonical = canonical_request(arrived, &auth.signed, &payload_hash)?;
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        auth.scope,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let expected = signature(&creds.secret_access_key, &scope, &to_sign);
    if !same_in_constant_time(&expected, &auth.signature) {
        return Err((
            "SignatureDoesNotMatch",
            "the request signature does not match".into(),
        ));
    }
    Ok(creds)
}

/// The credentials behind `access_key`, if they are known, unexpired and
/// presented with their own security token.
fn check_credentials(
    arrived: &Arrived<'_>,
    access_key: &str,
    lookup: impl Fn(&str) -> Option<Credentials>,
    now_ms: u64,
) -> Result<Credentials, Refusal> {
    let creds = lookup(access_key).ok_or(("InvalidAccessKey", "unknown access key".into()))?;
    if now_ms > creds.expires_ms {
        return Err(("ExpiredToken", "the upload credentials have expired".into()));
    }
    if arrived.header("x-amz-security-token") != Some(creds.session_token.as_str()) {
        return Err((
            "InvalidSecurityToken",
            "x-amz-security-token does not match the access key".into(),
        ));
    }
    Ok(creds)
}

/// Splits the credential scope and checks its region and service.
fn check_scope<'a>(
    scope: &'a str,
    region: &str,
    expected_service: &str,
) -> Result<Scope<'a>, Refusal> {
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
    Ok(Scope {
        date,
        region: scope_region,
        service,
    })
}

/// Checks that the date and token headers are signed and, for a POST, that
/// `x-amz-content-sha256` is the body's hash. Returns that hash.
fn check_payload(arrived: &Arrived<'_>, signed: &[String]) -> Result<String, Refusal> {
    for required in ["x-amz-date", "x-amz-security-token"] {
        if !signed.iter().any(|s| s == required) {
            return Err((
                "SignatureDoesNotMatch",
                format!("{required} must be signed"),
            ));
        }
    }
    let payload_hash = hex(&Sha256::digest(arrived.body));
    if arrived.method == "POST"
        && arrived.header("x-amz-content-sha256") != Some(payload_hash.as_str())
    {
        return Err((
            "SignatureDoesNotMatch",
            "x-amz-content-sha256 does not match the body".into(),
        ));
    }
    Ok(payload_hash)
}

/// The canonical request: method, path, sorted query, the signed headers with
/// their values, and the payload hash.
fn canonical_request(
    arrived: &Arrived<'_>,
    signed: &[String],
    payload_hash: &str,
) -> Result<String, Refusal> {
    let mut canonical_headers = String::new();
    for name in signed {
        let value = arrived.header(name).ok_or((
            "SignatureDoesNotMatch",
            format!("signed header {name} is missing"),
        ))?;
        canonical_headers.push_str(&format!(
            "{name}:{}\n",
            value.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    Ok(format!(
        "{}\n/\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        arrived.method,
        canonical_query(arrived.raw_query),
        signed.join(";")
    ))
}

/// The hex signature of `to_sign`, with the key derived from the secret
/// through the scope's date, region and service.
fn signature(secret_access_key: &str, scope: &Scope<'_>, to_sign: &str) -> String {
    let mut key = mac(format!("AWS4{secret_access_key}").as_bytes(), scope.date);
    for part in [scope.region, scope.service, "aws4_request"] {
        key = mac(&key, part);
    }
    hex(&mac(&key, to_sign))
}

/// Compares two signatures without stopping at the first differing byte.
fn same_in_constant_time(expected: &str, presented: &str) -> bool {
    expected.len() == presented.len()
        && expected
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
