//! The AWS4-HMAC-SHA256 request signer used by ByteDance's VOD and ImageX upload
//! APIs (PROTOCOL.md 4.7). The caller chooses which headers are signed: the upload
//! APIs sign `x-amz-date`, `x-amz-security-token` (and `x-amz-content-sha256` for
//! POST) but not `host`. Checked against the published AWS SigV4 test suite.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use tiktok_dm_proto::access_key::hex;

type HmacSha256 = Hmac<Sha256>;

/// STS-style credentials. The secret and token are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// Access key id (appears in the `Authorization` header).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The credential scope: `<date>/<region>/<service>/aws4_request`.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// `yyyyMMdd`.
    pub date: &'a str,
    /// e.g. `cn-north-1`.
    pub region: &'a str,
    /// e.g. `vod`, `imagex`.
    pub service: &'a str,
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// What goes into the canonical request.
#[derive(Clone, Copy, Debug)]
pub struct CanonicalInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as sent (not yet encoded).
    pub path: &'a str,
    /// The raw query string, without `?` (percent-encoded or not).
    pub query: &'a str,
    /// The headers to sign, in request order; names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    pub payload_hash: &'a str,
    /// Remove `.`/`..` segments and empty segments from the path first.
    pub normalize_path: bool,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `yyyyMMdd'T'HHmmss'Z'` for a Unix time in seconds.
pub fn amz_date(unix_secs: u64) -> String {
    let compact = tiktok_dm_proto::time::Utc::from_unix(unix_secs).compact();
    format!("{}T{}Z", &compact[..8], &compact[8..])
}

/// RFC 3986 encoding: unreserved characters stay, everything else is `%XX`.
fn uri_encode(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (hex_at(i + 1), hex_at(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&percent_decode(k), false, &mut ek);
            uri_encode(&percent_decode(v), false, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims and collapses runs of spaces, as SigV4 requires.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
    let path = if input.normalize_path {
        normalize(input.path)
    } else {
        input.path.to_owned()
    };
    let mut uri = String::with_capacity(path.len());
    uri_encode(path.as_bytes(), true, &mut uri);
    if uri.is_empty() {
        uri.push('/');
    }
    // Headers: lowercase names, sorted; repeated names joined with commas in order.
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Vec<String>> = Vec::new();
    for (name, value) in input.headers {
        let name = name.trim().to_ascii_lowercase();
        let value = canonical_value(value);
        match names.iter().position(|n| *n == name) {
            Some(i) => values[i].push(value),
            None => {
                names.push(name);
                values.push(vec![value]);
            }
        }
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|a, b| names[*a].cmp(&names[*b]));
    let mut headers = String::new();
    for &i in &order {
        headers.push_str(&names[i]);
        headers.push(':');
        headers.push_str(&values[i].join(","));
        headers.push('\n');
    }
    let signed = order
        .iter()
        .map(|&i| names[i].as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{uri}\n{}\n{headers}\n{signed}\n{}",
        input.method,
        canonical_query(input.query),
        input.payload_hash
    );
    (canonical, signed)
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &Scope<'_>, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length, so this arm is never taken; an empty
        // result would only make the server reject the signature.
        Err(_) => Vec::new(),
    }
}

/// The hex signature of `string_to_sign`.
pub fn signature(secret_access_key: &str, scope: &Scope<'_>, string_to_sign: &str) -> String {
    let k_date = hmac(
        format!("AWS4{secret_access_key}").as_bytes(),
        scope.date.as_bytes(),
    );
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// The `Authorization` header value.
pub fn authorization(
    access_key_id: &str,
    scope: &Scope<'_>,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// Everything a signed upload-API call needs.
#[derive(Clone, Debug)]
pub struct Signed {
    /// `Authorization`.
    pub authorization: String,
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Content-Sha256` (POST only).
    pub content_sha256: Option<String>,
}

/// Signs a ByteDance upload-API call (PROTOCOL.md 4.7): GET signs `x-amz-date`
/// and `x-amz-security-token`; POST also signs `x-amz-content-sha256`. `host` is
/// not signed.
pub fn sign_upload_call(
    keys: &SigningKeys,
    method: &str,
    query: &str,
    body: &[u8],
    region: &str,
    service: &str,
    unix_secs: u64,
) -> Signed {
    let date_time = amz_date(unix_secs);
    let scope = Scope {
        date: &date_time[..8],
        region,
        service,
    };
    let payload_hash = sha256_hex(body);
    let post = method.eq_ignore_ascii_case("POST");
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if post {
        headers.push(("x-amz-content-sha256", &payload_hash));
    }
    headers.push(("x-amz-date", &date_time));
    if let Some(token) = &keys.session_token {
        headers.push(("x-amz-security-token", token));
    }
    let input = CanonicalInput {
        method,
        path: "/",
        query,
        headers: &headers,
        payload_hash: &payload_hash,
        normalize_path: true,
    };
    let (canonical, signed) = canonical_request(&input);
    let sts = string_to_sign(&date_time, &scope, &canonical);
    let sig = signature(&keys.secret_access_key, &scope, &sts);
    Signed {
        authorization: authorization(&keys.access_key_id, &scope, &signed, &sig),
        amz_date: date_time.clone(),
        content_sha256: post.then_some(payload_hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_format_utc() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
    }

    #[test]
    fn paths_normalize_like_the_suite_expects() {
        assert_eq!(normalize("//example//"), "/example/");
        assert_eq!(normalize("/example1/example2/../.."), "/");
        assert_eq!(normalize("/./example"), "/example");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn upload_calls_leave_host_unsigned() {
        let keys = SigningKeys {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
            session_token: Some("T".into()),
        };
        let get = sign_upload_call(
            &keys,
            "GET",
            "Action=ApplyUploadInner&Version=2020-11-19",
            b"",
            "cn-north-1",
            "vod",
            0,
        );
        assert!(
            get.authorization
                .contains("SignedHeaders=x-amz-date;x-amz-security-token,"),
            "{}",
            get.authorization
        );
        let post = sign_upload_call(
            &keys,
            "POST",
            "Action=CommitUploadInner",
            b"{}",
            "cn-north-1",
            "vod",
            0,
        );
        assert!(
            post.authorization
                .contains("SignedHeaders=x-amz-content-sha256;x-amz-date;x-amz-security-token,")
        );
        assert_eq!(
            post.content_sha256.as_deref(),
            Some(sha256_hex(b"{}").as_str())
        );
        assert!(!format!("{keys:?}").contains("SK"));
    }
}
