//! The requests of the working client, replayed: its cookie header, its
//! context metadata, its request envelope, its im-api query and headers, its
//! ticket guard and DPoP proof, its socket URL and handshake headers, and its
//! ImageX calls with their signing profile. Each builder follows the Go code
//! of `pkg/libtiktok` field by field; only the hosts are the sandbox's.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use md5::Md5;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};
use tiktok_dm_sandbox::Account;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::pb::Pb;
use crate::tls::Server;

/// That client's `User-Agent`, mirrored into its metadata.
pub const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";
pub const MS_TOKEN: &str = "sandbox-msToken_0123456789-abc";
const VERIFY_FP: &str = "verify_sandbox_Ab12_Cd34";
/// The `ttwid` cookie, stored percent-encoded as a browser stores it.
const TTWID_COOKIE: &str = "1%7Csandbox%7C1786000000%7Cabc";

pub type WsHeaders = tokio_tungstenite::tungstenite::http::HeaderMap;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A session as that client holds it: the pasted cookie header and the `wid`
/// it read from the `/messages` page.
pub struct Session {
    pub server: Server,
    pub cookie: String,
    pub wid: String,
}

/// A cookie header as pasted from a logged-in browser: the session cookie
/// among the others that client reads (`msToken`, `s_v_web_id`, `ttwid`).
pub fn cookie(account: &Account) -> String {
    format!(
        "tt_csrf_token=sandbox-csrf; ttwid={TTWID_COOKIE}; msToken={MS_TOKEN}; \
         s_v_web_id={VERIFY_FP}; sessionid={}",
        account.session
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape` for the values used here.
fn query_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// `url.Values.Encode`: keys sorted, values query-escaped.
fn encode_query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", query_escape(&v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `randomBogus`: 22 to 24 characters of the URL-safe base64 alphabet.
fn random_bogus() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let n = 22 + rng.random_range(0..3);
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A UUID v4 in lowercase, as `uuid.New().String()` gives it.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `buildMetadata`: the browser context, in that client's order.
pub fn metadata(wid: &str) -> Vec<(&'static str, String)> {
    let fixed = |v: &str| v.to_owned();
    let mut pairs = vec![
        ("aid", fixed("1988")),
        ("app_name", fixed("tiktok_web")),
        ("channel", fixed("web")),
        ("device_platform", fixed("web_pc")),
        ("device_id", wid.to_owned()),
        ("region", fixed("CA")),
        ("priority_region", fixed("CA")),
        ("os", fixed("mac")),
        ("referer", fixed("https://www.tiktok.com/messages")),
        ("root_referer", fixed("")),
        ("cookie_enabled", fixed("true")),
        ("screen_width", fixed("1800")),
        ("screen_height", fixed("1169")),
        ("browser_language", fixed("en-US")),
        ("browser_platform", fixed("MacIntel")),
        ("browser_name", fixed("Mozilla")),
        ("browser_version", fixed(USER_AGENT)),
        ("browser_online", fixed("true")),
        ("verifyFp", fixed(VERIFY_FP)),
    ];
    for (k, v) in [
        ("app_language", "en"),
        ("webcast_language", "en"),
        ("tz_name", "America/Toronto"),
        ("is_page_visible", "true"),
        ("focus_state", "true"),
        ("is_fullscreen", "false"),
        ("history_len", "2"),
        ("user_is_login", "true"),
        ("data_collection_enabled", "true"),
        ("from_appID", "1988"),
        ("locale", "en"),
        ("user_agent", USER_AGENT),
        ("Web-Sdk-Ms-Token", MS_TOKEN),
    ] {
        pairs.push((k, fixed(v)));
    }
    pairs
}

/// `buildSendMetadata`: the five ticket-guard entries go before the last
/// context entry, which is put back after them.
pub fn send_metadata(wid: &str, public_key: &str) -> Vec<(&'static str, String)> {
    let mut pairs = metadata(wid);
    let last = pairs.pop().unwrap();
    pairs.extend([
        ("tt-ticket-guard-public-key", public_key.to_owned()),
        ("tt-ticket-guard-client-data", String::new()),
        ("tt-ticket-guard-version", "2".to_owned()),
        ("tt-ticket-guard-iteration-version", "0".to_owned()),
        ("tt-ticket-guard-web-version", "1".to_owned()),
        last,
    ]);
    pairs
}

/// The common request envelope: 1 cmd, 2 sequence, 3 "1.6.0", 4 an empty
/// message, 5 3, 6 the inbox flag, 7 "", 8 the body, 9 the device id (left
/// out on history), 11 "web", 15 the metadata, 18 1.
pub fn request(
    cmd: u64,
    sequence: u64,
    inbox: u64,
    body: Pb,
    device_id: Option<&str>,
    metadata: &[(&str, String)],
) -> Vec<u8> {
    let mut pb = Pb::new()
        .uint(1, cmd)
        .uint(2, sequence)
        .str(3, "1.6.0")
        .msg(4, Pb::new())
        .uint(5, 3)
        .uint(6, inbox)
        .str(7, "")
        .msg(8, body);
    if let Some(device_id) = device_id {
        pb = pb.str(9, device_id);
    }
    pb = pb.str(11, "web");
    for (k, v) in metadata {
        pb = pb.kv(15, k, v);
    }
    pb.uint(18, 1).into_bytes()
}

/// The im-api query of the inbox, upload-config and send calls, with
/// `extra` (the send's `ztca-*` keys).
pub fn im_query(extra: Vec<(&str, String)>) -> String {
    let mut pairs = vec![
        ("aid", "1988".to_owned()),
        ("version_code", "1.0.0".to_owned()),
        ("app_name", "tiktok_web".to_owned()),
        ("device_platform", "web_pc".to_owned()),
        ("msToken", MS_TOKEN.to_owned()),
        ("X-Bogus", random_bogus()),
    ];
    pairs.extend(extra);
    encode_query(pairs)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

impl Session {
    /// The headers every request of the im-api client carries, then the
    /// request's own (which replace them, as resty's do).
    fn im_headers(&self, own: &[(&str, &str)]) -> HeaderMap {
        let mut map = headers(&[
            ("cookie", &self.cookie),
            ("user-agent", USER_AGENT),
            ("accept-language", "en-US,en;q=0.9"),
            ("referer", "https://www.tiktok.com/"),
            ("accept", "application/x-protobuf"),
            ("content-type", "application/x-protobuf"),
            ("cache-control", "no-cache"),
            ("origin", "https://www.tiktok.com"),
        ]);
        map.extend(headers(own));
        map
    }

    /// POSTs an IM request to `path` with `query` (`None`: no query string)
    /// and returns the answer's body; the status must not be an error.
    pub async fn post_im(
        &self,
        path: &str,
        query: Option<String>,
        body: Vec<u8>,
        own: &[(&str, &str)],
    ) -> Vec<u8> {
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{}{path}{query}", self.server.base_url());
        let response = self
            .server
            .http()
            .post(url)
            .headers(self.im_headers(own))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 400, "{path}: {response:?}");
        response.bytes().await.unwrap().to_vec()
    }

    /// A media GET with the www client's headers (`DownloadPrivateImage`).
    pub async fn download(&self, url: &str) -> Vec<u8> {
        let response = self
            .server
            .http()
            .get(url)
            .headers(headers(&[
                ("cookie", &self.cookie),
                ("user-agent", USER_AGENT),
                ("accept-language", "en-US,en;q=0.9"),
                (
                    "accept",
                    "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
                ),
                ("origin", "https://www.tiktok.com"),
                ("referer", "https://www.tiktok.com/messages?lang=en"),
            ]))
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 400, "{url}: {response:?}");
        response.bytes().await.unwrap().to_vec()
    }

    /// `deriveWSURL` and `ConnectWebSocket`: the access key from the wid
    /// alone, `ttwid` decoded once and encoded once, keys sorted, and no
    /// subprotocol offered. Returns the socket and the handshake answer.
    pub async fn connect(&self) -> (Ws, WsHeaders) {
        let key = hex(&Md5::digest(
            format!(
                "9e1bd35ec9db7b8d846de66ed140b1ad9{}f8a69f1719916z",
                self.wid
            )
            .as_bytes(),
        ));
        let query = encode_query(vec![
            ("device_platform", "web".into()),
            ("version_code", "fws_1.0.0".into()),
            ("access_key", key),
            ("fpid", "9".into()),
            ("aid", "1459".into()),
            ("ttwid", query_unescape(TTWID_COOKIE)),
            ("xsack", "1".into()),
            ("xaack", "1".into()),
            ("xsqos", "0".into()),
        ]);
        assert!(query.contains("ttwid=1%7Csandbox%7C1786000000%7Cabc&"));
        let url = format!("{}?{query}", self.server.ws_url());
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().extend(headers(&[
            ("cookie", &self.cookie),
            ("user-agent", USER_AGENT),
            ("origin", "https://www.tiktok.com"),
            ("referer", "https://www.tiktok.com/"),
        ]));
        self.server.connect_ws(request).await.unwrap()
    }
}

/// A fresh P-256 key for one send, as `generateP256Key` draws one.
pub fn fresh_key() -> SigningKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SigningKey::from_bytes(&bytes.into()) {
            return key;
        }
    }
}

/// The key as the ticket guard carries it: standard base64 of 0x04 ‖ x ‖ y.
pub fn public_key(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().to_encoded_point(false).as_bytes())
}

/// `buildDPoPJWT`: header and payload are Go maps, so their keys go out
/// sorted; the signature is r ‖ s.
pub fn dpop(key: &SigningKey, htm: &str, htu: &str) -> String {
    let point = key.verifying_key().to_encoded_point(false);
    let header = serde_json::json!({
        "alg": "ES256",
        "jwk": {
            "crv": "P-256",
            "kty": "EC",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        },
        "typ": "dpop+jwt",
    });
    let jti: [u8; 32] = rand::random();
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = serde_json::json!({
        "htm": htm, "htu": htu, "iat": iat, "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The ImageX credentials that client picks from the cmd-2059 answer.
#[derive(Debug)]
pub struct Credentials {
    pub service_id: String,
    pub host: String,
    pub access_key_id: String,
    pub security_token: String,
    pub secret: String,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `buildSigV4CanonicalQuery`: keys sorted, values AWS-percent-encoded.
pub fn canonical_query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let escape = |v: &str| query_escape(v).replace('+', "%20");
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", escape(&v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `buildMediaAuthorization` with that client's profiles: GET signs
/// `x-amz-date;x-amz-security-token`; POST adds `x-amz-content-sha256`
/// (Content-Type is sent but not signed). Returns the headers to send.
pub fn sign(creds: &Credentials, method: &str, query: &str, body: &[u8]) -> Vec<(String, String)> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let compact = tiktok_dm_proto::time::Utc::from_unix(secs).compact();
    let date = &compact[..8];
    let amz_date = format!("{date}T{}Z", &compact[8..]);
    let payload_hash = hex(&Sha256::digest(body));
    let mut lines = vec![
        format!("x-amz-date:{amz_date}"),
        format!("x-amz-security-token:{}", creds.security_token.trim()),
    ];
    let mut signed = vec!["x-amz-date", "x-amz-security-token"];
    if method == "POST" {
        lines.push(format!("x-amz-content-sha256:{payload_hash}"));
        signed.push("x-amz-content-sha256");
    }
    lines.sort();
    signed.sort();
    let canonical = [
        method,
        "/",
        query,
        &format!("{}\n", lines.join("\n")),
        &signed.join(";"),
        &payload_hash,
    ]
    .join("\n");
    let scope = format!("{date}/cn-north-1/imagex/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", creds.secret).as_bytes(), date);
    for part in ["cn-north-1", "imagex", "aws4_request"] {
        key = hmac(&key, part);
    }
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={}",
        creds.access_key_id,
        signed.join(";"),
        hex(&hmac(&key, &to_sign))
    );
    let mut out = vec![
        ("accept".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), authorization),
        ("x-amz-date".to_owned(), amz_date),
        (
            "x-amz-security-token".to_owned(),
            creds.security_token.clone(),
        ),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ("accept-language".to_owned(), "en-US,en;q=0.9".to_owned()),
    ];
    if method == "POST" {
        out.push(("content-type".to_owned(), "application/json".to_owned()));
        out.push(("x-amz-content-sha256".to_owned(), payload_hash));
    }
    out
}

/// A call to the upload API or the storage node (that client says
/// `https://`; the sandbox serves it over TLS or, with a TLS proxy in front
/// in mind, plain HTTP). Returns the status and the JSON answer.
pub async fn media_call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = if method == "POST" {
        http.post(url).body(body)
    } else {
        http.get(url)
    };
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// `randomUploadIdentifier`: lowercase letters and digits.
pub fn upload_identifier(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
