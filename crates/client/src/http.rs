//! The im-api HTTP transport (PROTOCOL.md 5): `POST {api}/{route}?{context}` with
//! the protobuf `Request`, answered by a protobuf `Response`.

use std::sync::Once;

use reqwest::header::{
    ACCEPT, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, ORIGIN, REFERER, USER_AGENT,
};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::schema::Response;

use crate::config::Config;
use crate::error::{Error, Result};

/// rustls needs one process-wide crypto provider; we build only `ring`.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client with the browser-like default headers and the session cookie.
pub(crate) fn http_client(config: &Config) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut headers = HeaderMap::new();
    let cookie = HeaderValue::from_str(&config.credentials.cookie_header()).map_err(|_| {
        Error::InvalidCredentials("the cookies contain characters not allowed in a header".into())
    })?;
    let mut cookie = cookie;
    cookie.set_sensitive(true);
    headers.insert(COOKIE, cookie);
    headers.insert(ORIGIN, HeaderValue::from_static("https://www.tiktok.com"));
    headers.insert(
        REFERER,
        HeaderValue::from_static("https://www.tiktok.com/messages"),
    );
    let ua = HeaderValue::from_str(&config.user_agent)
        .map_err(|_| Error::InvalidInput("the User-Agent contains invalid characters".into()))?;
    headers.insert(USER_AGENT, ua);
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(config.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Connect(format!("cannot build the HTTP client: {e}")))
}

/// Sends one encoded request to the route of `command` and reads the answer.
pub(crate) async fn send(
    client: &reqwest::Client,
    config: &Config,
    command: i32,
    body: Vec<u8>,
) -> Result<Response> {
    let route = cmd::route(command)
        .ok_or_else(|| Error::InvalidInput(format!("no HTTP route is known for cmd {command}")))?;
    let mut url = format!(
        "{}/{route}?{}",
        config.endpoints.api_url.trim_end_matches('/'),
        cmd::WEB_API_QUERY
    );
    if let Some(token) = config.credentials.cookie("msToken") {
        url.push_str("&msToken=");
        url.push_str(&crate::frontier::query_escape(token));
    }
    let result = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header(ACCEPT, "application/x-protobuf")
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

/// reqwest errors include the URL, which carries `msToken`: keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| "request failed".into())
}
