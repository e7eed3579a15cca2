//! Where a webhook may post. A URL must be absolute `http` or `https`, at most
//! [`MAX_URL_LEN`] bytes, with a host and without a user name, password or
//! fragment. Unless `allow_private_webhooks` is set, its host must reach only
//! public addresses (not loopback, private, unique local, link-local,
//! unspecified, shared CGNAT, multicast, broadcast or reserved): checked when
//! the webhook is created, and again at every connection the worker makes,
//! by the resolver its HTTP client connects through (`CheckedResolver`),
//! so a name that resolves elsewhere later (DNS rebinding) is refused and a
//! connection never goes to an address that was not checked.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// How long a name may take to resolve when a webhook is created.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlRefusal {
    /// Not a URL a webhook can have.
    Invalid(String),
    /// It reaches a loopback, private or reserved address.
    NotAllowed(String),
}

/// A URL as shown in a message: at most 100 characters.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Checks a URL's form (not where it leads).
///
/// # Errors
/// [`UrlRefusal::Invalid`], saying why.
pub fn parse(text: &str) -> Result<Url, UrlRefusal> {
    let invalid = |why: &str| UrlRefusal::Invalid(format!("the url {} {why}", shown(text)));
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefusal::Invalid(format!(
            "the url is {} bytes long; at most {MAX_URL_LEN} are accepted",
            text.len()
        )));
    }
    if text.trim() != text || text.is_empty() {
        return Err(invalid("is empty or has spaces around it"));
    }
    let url = Url::parse(text).map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("is not http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("carries a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(invalid("has a #fragment, which is never sent"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    Ok(url)
}

/// Whether a webhook may reach `ip`.
pub fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || tiktok_dm_client::is_public_address(ip)
}

/// The address literal of a URL's host, if it is one.
pub(crate) fn literal(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// The refusal for a host that reaches `ip`.
fn not_allowed(host: &str, ip: IpAddr) -> UrlRefusal {
    UrlRefusal::NotAllowed(not_allowed_text(host, ip))
}

/// Why a host that reaches `ip` is refused.
fn not_allowed_text(host: &str, ip: IpAddr) -> String {
    format!(
        "the host {} reaches {ip}, a loopback, private or reserved address; webhooks go only to public addresses (unless allow_private_webhooks is set)",
        shown(host)
    )
}

/// Checks where `url` leads, as at creation: its address, or every address
/// its name resolves to now.
///
/// # Errors
/// [`UrlRefusal::NotAllowed`] for an address not allowed;
/// [`UrlRefusal::Invalid`] for a name that does not resolve.
pub async fn check_destination(url: &Url, allow_private: bool) -> Result<(), UrlRefusal> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    if let Some(ip) = literal(url) {
        return if allowed(ip, false) {
            Ok(())
        } else {
            Err(not_allowed(host, ip))
        };
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .ok()
        .and_then(Result::ok)
        .map(Iterator::collect::<Vec<SocketAddr>>)
        .unwrap_or_default();
    if found.is_empty() {
        return Err(UrlRefusal::Invalid(format!(
            "the host {} does not resolve",
            shown(host)
        )));
    }
    match found.iter().find(|a| !allowed(a.ip(), false)) {
        Some(bad) => Err(not_allowed(host, bad.ip())),
        None => Ok(()),
    }
}

/// Why the worker's client did not connect: the refusal, for the delivery's
/// recorded error.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// The refusal inside a failed request, if that is why it failed.
pub(crate) fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&dyn StdError> = e.source();
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        source = s.source();
    }
    None
}

/// The resolver of the worker's HTTP client: it resolves a name once, checks
/// every address, and gives the client those addresses only (all of them
/// allowed), or refuses the name. Address literals do not reach a resolver;
/// the worker checks them itself before it posts.
pub(crate) struct CheckedResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = found.iter().find(|a| !allowed(a.ip(), allow_private)) {
                let refused = Refused(not_allowed_text(&host, bad.ip()));
                return Err(Box::new(refused) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        for ok in ["https://example.com/hook", "http://example.com:8080/x?y=1"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "example.com/x",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://example.com/#frag",
            " https://example.com/",
            "file:///etc/passwd",
        ] {
            assert!(matches!(parse(bad), Err(UrlRefusal::Invalid(_))), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(parse(&long), Err(UrlRefusal::Invalid(m)) if m.contains("2048")));
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9/x",
            "http://10.0.0.1/x",
            "http://[::1]/x",
            "http://169.254.169.254/",
            "http://100.64.0.1/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:1/",
        ] {
            let url = parse(bad).unwrap();
            assert!(
                matches!(
                    check_destination(&url, false).await,
                    Err(UrlRefusal::NotAllowed(_))
                ),
                "{bad}"
            );
            assert_eq!(check_destination(&url, true).await, Ok(()), "{bad}");
        }
        let public = parse("http://93.184.216.34/x").unwrap();
        assert_eq!(check_destination(&public, false).await, Ok(()));
    }
}
