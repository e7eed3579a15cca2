//! The im-api HTTP transport (PROTOCOL.md 5): `POST {api}/{route}?{context}` with
//! the protobuf `Request`, answered by a protobuf `Response`.
//!
//! One `reqwest::Client` (and one TLS configuration) serves every session in the
//! process, so a thousand idle sessions do not hold a thousand connection pools
//! and root stores; each request carries its session's cookie.

use std::sync::{Arc, Once, OnceLock};

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, HeaderValue, ORIGIN, REFERER, USER_AGENT};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::schema::Response;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ticket_guard::TicketGuard;

/// rustls needs one process-wide crypto provider; we build only `ring`.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS client configuration shared by every WebSocket (Mozilla's roots).
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        install_crypto_provider();
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    })
    .clone()
}

fn shared_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls_config()).clone())
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Connect(format!("cannot build the HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// One session's view of the shared HTTP client.
#[derive(Clone)]
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    cookie: HeaderValue,
    user_agent: HeaderValue,
}

impl HttpTransport {
    pub(crate) fn new(config: &Config) -> Result<Self> {
        let mut cookie =
            HeaderValue::from_str(&config.credentials.cookie_header()).map_err(|_| {
                Error::InvalidCredentials(
                    "the cookies contain characters not allowed in a header".into(),
                )
            })?;
        cookie.set_sensitive(true);
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            Error::InvalidInput("the User-Agent contains invalid characters".into())
        })?;
        Ok(Self {
            client: shared_client()?,
            cookie,
            user_agent,
        })
    }

    /// A request with the browser headers and the session cookie.
    pub(crate) fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(COOKIE, self.cookie.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(ORIGIN, "https://www.tiktok.com")
            .header(REFERER, "https://www.tiktok.com/messages")
    }

    /// `builder` with the browser headers and the session cookie (a request
    /// made on another client).
    pub(crate) fn session_headers(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        builder
            .header(COOKIE, self.cookie.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(ORIGIN, "https://www.tiktok.com")
            .header(REFERER, "https://www.tiktok.com/messages")
    }

    /// A request without the session cookie, for the upload hosts (they are not
    /// TikTok's web domain and must never see the session).
    pub(crate) fn plain(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(USER_AGENT, self.user_agent.clone())
    }

    /// Sends one encoded request to the route of `command` and reads the answer.
    /// With a ticket guard (the caller gives one for a send, cmd 100, only)
    /// it carries the ticket-guard HTTP headers and
    /// `ztca-version=1&ztca-dpop=...` as TikTok web does; the entries in
    /// `body` are the caller's.
    pub(crate) async fn send(
        &self,
        config: &Config,
        command: i32,
        body: Vec<u8>,
        guard: Option<&TicketGuard>,
    ) -> Result<Response> {
        let route = cmd::route(command).ok_or_else(|| {
            Error::InvalidInput(format!("no HTTP route is known for cmd {command}"))
        })?;
        let base = format!("{}/{route}", config.endpoints.api_url.trim_end_matches('/'));
        let mut url = format!("{base}?{}", cmd::WEB_API_QUERY);
        if let Some(token) = config.credentials.cookie("msToken") {
            url.push_str("&msToken=");
            url.push_str(&crate::frontier::query_escape(token));
        }
        // The browser computes X-Bogus; no one outside it can. The working
        // open-source client sends a random one and is served (PROTOCOL.md
        // 10.1), so whether TikTok wants it present at all is the open
        // question: we send it as that client does.
        url.push_str("&X-Bogus=");
        url.push_str(&random_bogus());
        if let Some(guard) = guard {
            let proof = guard.dpop("POST", &base, crate::upload::unix_secs())?;
            url.push_str("&ztca-version=1&ztca-dpop=");
            url.push_str(&proof);
        }
        let mut request = self
            .request(reqwest::Method::POST, &url)
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(ACCEPT, "application/x-protobuf");
        if let Some(guard) = guard {
            request = request
                .header("tt-ticket-guard-iteration-version", "0")
                .header("tt-ticket-guard-public-key", guard.public_key())
                .header("tt-ticket-guard-version", "2")
                .header("tt-ticket-guard-web-version", "1");
        }
        let result = request
            .timeout(config.request_timeout)
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(Error::Connect(without_url(&e))),
            Err(e) if e.is_timeout() => return Err(Error::Timeout(config.request_timeout)),
            Err(e) => return Err(Error::ConnectionLost(without_url(&e))),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(Error::HttpStatus {
                status: status.as_u16(),
            });
        }
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(Error::Timeout(config.request_timeout)),
            Err(e) => return Err(Error::ConnectionLost(without_url(&e))),
        };
        Response::decode(&bytes)
            .map_err(|e| Error::Protocol(format!("HTTP answer does not decode: {e}")))
    }
}

/// reqwest errors include the URL, which carries `msToken`: keep only the cause.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| "request failed".into())
}

/// A stand-in `X-Bogus`: 22 to 24 characters of the base64url alphabet, the
/// shape the working open-source client sends.
fn random_bogus() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let len = rand::random_range(22..=24);
    (0..len)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_x_bogus_has_the_working_clients_shape() {
        for _ in 0..200 {
            let b = random_bogus();
            assert!((22..=24).contains(&b.len()), "{b}");
            assert!(
                b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
        assert_ne!(random_bogus(), random_bogus());
    }
}
