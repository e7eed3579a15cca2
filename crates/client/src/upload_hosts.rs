//! Where an image upload may go, and how much of an answer is read. TikTok's
//! servers name the hosts an image goes to (the ImageX API host in cmd 2059's
//! answer, the storage node in Apply's) and the names in its URLs (the store
//! URI, the part upload's id); a name is followed only when it is safe:
//!
//! - https, or plain http only when the configured API URL is plain http
//!   itself (a local sandbox; TikTok is https);
//! - the configured API host itself (any port), or else a public address:
//!   loopback, private, link-local, shared and other special-purpose
//!   addresses are refused, named literally or by a DNS name that resolves to
//!   them. Names are checked as each connection is made (a resolver that
//!   drops such addresses), so a second lookup cannot change the answer;
//! - store URIs and upload ids are percent-escaped, and a store URI with a
//!   `.` or `..` segment is refused;
//! - an answer is read up to [`MAX_ANSWER_BYTES`].
//!
//! A refusal is a permanent upload failure: trying again gets the same names.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::USER_AGENT;
use reqwest::{Method, RequestBuilder, Url};

use crate::config::Config;
use crate::http::HttpTransport;

/// The most an upload-API or storage answer may hold. Their JSON is a few
/// hundred bytes; anything near this is not an answer to read.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A base URL a server named, checked: `scheme://host[:port][/path]`, no
/// trailing slash, no query.
#[derive(Clone, Debug)]
pub(crate) struct UploadBase {
    url: String,
    /// A DNS name other than the configured API host: connections go
    /// through [`PublicOnly`].
    public_only: bool,
}

impl UploadBase {
    /// Checks `named` (a bare host, or a URL), which a server gave as a base
    /// URL; bare hosts get the scheme of `like`. `api_url` is the configured
    /// im-api URL.
    ///
    /// # Errors
    /// Why the name is refused, for the user.
    pub(crate) fn check(named: &str, like: &str, api_url: &str) -> Result<Self, String> {
        let candidate = if named.contains("://") {
            named.trim().to_owned()
        } else {
            let scheme = if like.starts_with("http://") {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{}", named.trim())
        };
        let shown = shown(named);
        let mut url = Url::parse(&candidate)
            .map_err(|e| format!("the named host {shown} is not a URL: {e}"))?;
        let plain_allowed = api_url.trim_start().starts_with("http://");
        match url.scheme() {
            "https" => {}
            "http" if plain_allowed => {}
            other => {
                return Err(format!(
                    "the named host {shown} is {other}://; uploads go over https only"
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("the named host {shown} carries a user name"));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(format!("the named host {shown} has no host"));
        };
        let configured = Url::parse(api_url.trim()).ok();
        let same_host = configured.as_ref().and_then(Url::host_str) == Some(host);
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        let public_only = match literal {
            _ if same_host => false,
            Ok(ip) if !is_public(ip) => {
                return Err(format!(
                    "the named host {shown} is a loopback, private or reserved address; \
                     uploads go only to public addresses"
                ));
            }
            // A public address needs no resolver; a name is resolved by one
            // that gives public addresses only.
            Ok(_) => false,
            Err(_) => true,
        };
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self {
            url: url.as_str().trim_end_matches('/').to_owned(),
            public_only,
        })
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn as_str(&self) -> &str {
        &self.url
    }

    /// A request WITH the session cookie to `url` (on this base), for a
    /// received image's blob: through the session's client for the
    /// configured host, else through the public-only one, so the cookie never
    /// goes to a loopback, private or reserved address.
    pub(crate) fn with_session(
        &self,
        http: &HttpTransport,
        method: Method,
        url: &str,
    ) -> Result<RequestBuilder, String> {
        if !self.public_only {
            return Ok(http.request(method, url));
        }
        Ok(http.session_headers(public_client()?.request(method, url)))
    }

    /// A request without the session cookie to `url` (on this base): through
    /// the session's client for the configured host, else through the
    /// public-only one.
    pub(crate) fn plain(
        &self,
        http: &HttpTransport,
        config: &Config,
        method: Method,
        url: &str,
    ) -> Result<RequestBuilder, String> {
        if !self.public_only {
            return Ok(http.plain(method, url));
        }
        Ok(public_client()?
            .request(method, url)
            .header(USER_AGENT, config.user_agent.as_str()))
    }
}

/// A name as shown in an error: quoted, at most 100 characters.
fn shown(named: &str) -> String {
    match named.char_indices().nth(100) {
        Some((cut, _)) => format!("{:?}…", &named[..cut]),
        None => format!("{named:?}"),
    }
}

/// Whether `ip` is an address on the public Internet: not loopback, private,
/// link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// broadcast, unspecified or reserved; IPv6 forms that embed an IPv4 address
/// (mapped, NAT64, 6to4) are judged by it; local-use NAT64 and Teredo, which
/// can reach private IPv4 networks, are not public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240;
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // 6to4 (2002::/16) reaches the IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (64:ff9b:1::/48)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo (2001::/32): tunnels to any IPv4
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated)
    !special
}

/// A store URI as a URL path: each segment percent-escaped, `/` kept.
///
/// # Errors
/// An empty URI, or a `.` or `..` segment (a URL would resolve it away).
pub(crate) fn store_path(store_uri: &str) -> Result<String, String> {
    if store_uri.is_empty() {
        return Err("the answer names an empty StoreUri".into());
    }
    let mut out = String::with_capacity(store_uri.len());
    for (i, segment) in store_uri.split('/').enumerate() {
        if segment == "." || segment == ".." {
            return Err(format!(
                "the answer's StoreUri {} has a {segment:?} segment",
                shown(store_uri)
            ));
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&crate::frontier::query_escape(segment));
    }
    Ok(out)
}

/// Why a connection through the public-only client was not made.
#[derive(Debug)]
pub(crate) struct RefusedAddress(String);

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RefusedAddress {}

/// The refusal inside a failed request, if that is why it failed.
pub(crate) fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&dyn StdError> = e.source();
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<RefusedAddress>() {
            return Some(refused.to_string());
        }
        source = s.source();
    }
    None
}

/// A resolver that gives only public addresses, and refuses a name that has
/// none.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused = RefusedAddress(format!(
                    "the named host {} resolves to no public address (loopback, private or \
                     reserved only); uploads go only to public addresses",
                    shown(&host)
                ));
                return Err(Box::new(refused) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The client for hosts other than the configured one: the shared client's
/// TLS and redirect policy, with the [`PublicOnly`] resolver.
fn public_client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*crate::http::tls_config()).clone())
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .dns_resolver(Arc::new(PublicOnly))
        .build()
        .map_err(|e| format!("cannot build the upload HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Why an answer was not read.
pub(crate) enum ReadError {
    /// Over [`MAX_ANSWER_BYTES`].
    TooLarge,
    /// The transfer failed.
    Http(reqwest::Error),
}

/// Reads an answer's body, stopping as soon as it passes `cap` bytes.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIKTOK: &str = "https://im-api.tiktok.com";
    const SANDBOX: &str = "http://127.0.0.1:8080";

    fn check(named: &str, api_url: &str) -> Result<UploadBase, String> {
        UploadBase::check(named, api_url, api_url)
    }

    #[test]
    fn tiktok_upload_hosts_must_be_https_and_public() {
        let ok = check("imagex.tiktokv.com", TIKTOK).unwrap();
        assert_eq!(ok.as_str(), "https://imagex.tiktokv.com");
        assert!(ok.public_only);
        assert!(check("https://tos-useast5.tiktokv.com/", TIKTOK).is_ok());
        for refused in [
            "http://imagex.tiktokv.com",
            "ftp://imagex.tiktokv.com",
            "127.0.0.1",
            "10.1.2.3:8443",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "[::1]",
            "[fd00::1]",
            "[fe80::1]",
            "[::ffff:192.168.0.1]",
            "[64:ff9b::a00:1]",
            "https://user:pw@imagex.tiktokv.com",
        ] {
            let err = check(refused, TIKTOK).unwrap_err();
            assert!(err.contains("named host"), "{refused}: {err}");
        }
    }

    #[test]
    fn a_plain_http_sandbox_may_name_itself_over_http_but_not_private_others() {
        let own = check("127.0.0.1:9999", SANDBOX).unwrap();
        assert_eq!(own.as_str(), "http://127.0.0.1:9999");
        assert!(!own.public_only, "the configured host, any port");
        assert!(check("https://127.0.0.1:8080", SANDBOX).is_ok());
        assert!(check("http://169.254.169.254", SANDBOX).is_err());
        assert!(check("http://10.0.0.1", SANDBOX).is_err());
        assert!(check("http://localhost:8080", SANDBOX).unwrap().public_only);
        // An https sandbox names no plain http host, not even itself.
        assert!(check("http://127.0.0.1:8080", "https://127.0.0.1:8080").is_err());
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "2001:db8::1",
            "ff02::1",
            "64:ff9b:1::a00:1",
            "2001:0:a00:1::1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn store_uris_are_escaped_segment_by_segment() {
        assert_eq!(
            store_path("tos-maliva-i-0068/a1b2").unwrap(),
            "tos-maliva-i-0068/a1b2"
        );
        assert_eq!(store_path("t/a b?c#d%e").unwrap(), "t/a%20b%3Fc%23d%25e");
        assert!(store_path("t/../admin").is_err());
        assert!(store_path("./x").is_err());
        assert!(store_path("").is_err());
    }
}
