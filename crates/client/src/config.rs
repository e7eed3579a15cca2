//! Session configuration: `Config::builder(credentials)...build()`.

use std::str::FromStr;
use std::time::Duration;

use tiktok_dm_proto::access_key::TIKTOK_WEB_APP_KEY;
use tiktok_dm_proto::ids::{DeviceId, Uid};

use crate::credentials::Credentials;
use crate::error::{Error, Result};

/// Which transport carries IM requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TransportMode {
    /// What the web client does: the WebSocket first (up to `ws_attempts`
    /// transmissions of the same request), then HTTP.
    #[default]
    Auto,
    /// The frontier WebSocket only.
    Ws,
    /// The im-api HTTP routes only.
    Http,
}

impl FromStr for TransportMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "ws" | "websocket" => Ok(Self::Ws),
            "http" => Ok(Self::Http),
            other => Err(Error::InvalidInput(format!(
                "unknown transport {other:?}; use auto, ws or http"
            ))),
        }
    }
}

/// Where TikTok (or the sandbox) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The frontier WebSocket URL (without query).
    pub ws_url: String,
    /// The im-api base URL.
    pub api_url: String,
    /// The web base URL (for the `/messages` page).
    pub web_url: String,
}

/// Which pair of TikTok's IM hosts a session talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TikTokHosts {
    /// `im-api.tiktok.com` / `im-ws.tiktok.com`: the 2026 web page's own
    /// (seen in live captures of a US account).
    #[default]
    Global,
    /// `im-api-sg.tiktok.com` / `im-ws-sg.tiktok.com`: what a working
    /// open-source web client uses (PROTOCOL.md 10.1).
    Sg,
}

impl FromStr for TikTokHosts {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "default" => Ok(Self::Global),
            "sg" => Ok(Self::Sg),
            other => Err(Error::InvalidInput(format!(
                "unknown TikTok hosts {other:?}; use global or sg"
            ))),
        }
    }
}

impl Endpoints {
    /// TikTok's production endpoints, from the page config (seen in live captures).
    pub fn tiktok() -> Self {
        Self::tiktok_hosts(TikTokHosts::Global)
    }

    /// TikTok's production endpoints on the given IM hosts.
    pub fn tiktok_hosts(hosts: TikTokHosts) -> Self {
        let suffix = match hosts {
            TikTokHosts::Global => "",
            TikTokHosts::Sg => "-sg",
        };
        Self {
            ws_url: format!("wss://im-ws{suffix}.tiktok.com/ws/v2"),
            api_url: format!("https://im-api{suffix}.tiktok.com"),
            web_url: "https://www.tiktok.com".into(),
        }
    }

    /// The endpoints of a sandbox at `base_url` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// A URL that is not `http://` or `https://`.
    pub fn sandbox(base_url: &str) -> Result<Self> {
        let base = base_url.trim().trim_end_matches('/');
        let ws = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}/ws/v2")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}/ws/v2")
        } else {
            return Err(Error::InvalidInput(format!(
                "sandbox URL {base:?} must start with http:// or https://"
            )));
        };
        Ok(Self {
            ws_url: ws,
            api_url: base.to_owned(),
            web_url: base.to_owned(),
        })
    }
}

/// How images are uploaded and sent (PROTOCOL.md 10.3). The flow and its
/// values come from a working open-source TikTok web client, not from a
/// capture of our own; every value stays a setting so that a change on
/// TikTok's side needs no new release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// SigV4 region of the ImageX API (`cn-north-1`).
    pub region: String,
    /// SigV4 service name of the ImageX API (`imagex`).
    pub imagex_service: String,
    /// `copies` of the commit's `Encryption` function (`cipher_v2`).
    pub encryption_copies: String,
    /// Credentials are reused until this long before their `expires_at_ms`.
    pub credential_margin: Duration,
    /// Files larger than this go up in parts (the working client sends one
    /// request whatever the size; parts are the storage API's own option).
    pub part_threshold: u64,
    /// Part size (at least 5 MB, as the Douyin uploader uses).
    pub part_size: u64,
    /// Attempts per upload step for retryable failures.
    pub max_attempts: u32,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            region: "cn-north-1".into(),
            imagex_service: "imagex".into(),
            encryption_copies: "cipher_v2".into(),
            credential_margin: Duration::from_secs(30),
            part_threshold: 10 * 1024 * 1024,
            part_size: 5 * 1024 * 1024,
            max_attempts: 3,
        }
    }
}

/// A session's settings. Build one with [`Config::builder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) credentials: Credentials,
    pub(crate) endpoints: Endpoints,
    pub(crate) transport: TransportMode,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ws_attempts: u32,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) max_idle: Duration,
    pub(crate) user_agent: String,
    pub(crate) region: String,
    pub(crate) language: String,
    pub(crate) tz_name: String,
    pub(crate) wid: Option<DeviceId>,
    pub(crate) uid: Option<Uid>,
    pub(crate) app_key: String,
    pub(crate) upload: UploadConfig,
    pub(crate) image_limit: u64,
}

/// The browser User-Agent the client presents by default.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/149.0.0.0 Safari/537.36";

impl Config {
    /// Starts a configuration for one account.
    pub fn builder(credentials: Credentials) -> ConfigBuilder {
        ConfigBuilder {
            config: Self {
                credentials,
                endpoints: Endpoints::tiktok(),
                transport: TransportMode::Auto,
                // TikTok's own timeout is unknown; the SDK default is 2 s, which
                // is short for a send that may be moderated, so we wait longer.
                request_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(10),
                ws_attempts: 3,
                heartbeat_interval: Duration::from_secs(15),
                max_idle: Duration::from_secs(30),
                user_agent: DEFAULT_USER_AGENT.into(),
                region: "US".into(),
                language: "en-US".into(),
                tz_name: "UTC".into(),
                wid: None,
                uid: None,
                app_key: TIKTOK_WEB_APP_KEY.into(),
                upload: UploadConfig::default(),
                image_limit: crate::image::DEFAULT_IMAGE_LIMIT,
            },
        }
    }

    /// The transport mode.
    pub fn transport(&self) -> TransportMode {
        self.transport
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The image settings.
    pub fn upload_config(&self) -> &UploadConfig {
        &self.upload
    }

    /// The largest image accepted.
    pub fn image_limit(&self) -> u64 {
        self.image_limit
    }
}

/// Builds a [`Config`].
#[derive(Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Points every endpoint somewhere else (the sandbox, a proxy).
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.config.endpoints = endpoints;
        self
    }

    /// Which transport to use.
    pub fn transport(mut self, mode: TransportMode) -> Self {
        self.config.transport = mode;
        self
    }

    /// How long to wait for the answer to one transmission.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How long to wait for a connection (TCP, TLS and WebSocket handshake).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How many times a request is transmitted over the WebSocket before the
    /// `auto` transport falls back to HTTP (the web SDK uses 3).
    pub fn ws_attempts(mut self, attempts: u32) -> Self {
        self.config.ws_attempts = attempts;
        self
    }

    /// Heartbeat interval and the idle window after which the socket is
    /// considered dead (web SDK: 15 s and 30 s).
    pub fn heartbeat(mut self, interval: Duration, max_idle: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.max_idle = max_idle;
        self
    }

    /// The browser User-Agent to present.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.user_agent = ua.into();
        self
    }

    /// The region sent in the context headers (default "US").
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.config.region = region.into();
        self
    }

    /// The web device id, when known (otherwise read from the messages page).
    pub fn wid(mut self, wid: DeviceId) -> Self {
        self.config.wid = Some(wid);
        self
    }

    /// The account's uid, when known (otherwise read from the messages page).
    pub fn uid(mut self, uid: Uid) -> Self {
        self.config.uid = Some(uid);
        self
    }

    /// The frontier appKey for `access_key` (default: TikTok web's, seen in live captures).
    pub fn app_key(mut self, app_key: impl Into<String>) -> Self {
        self.config.app_key = app_key.into();
        self
    }

    /// How images are uploaded and sent (see [`UploadConfig`]).
    pub fn upload(mut self, upload: UploadConfig) -> Self {
        self.config.upload = upload;
        self
    }

    /// The largest image accepted, in bytes (default 20 MB).
    pub fn image_limit(mut self, limit: u64) -> Self {
        self.config.image_limit = limit;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// Zero timeouts or attempts, or malformed endpoint URLs.
    pub fn build(self) -> Result<Config> {
        let c = &self.config;
        if c.request_timeout.is_zero() || c.connect_timeout.is_zero() {
            return Err(Error::InvalidInput(
                "timeouts must be greater than zero".into(),
            ));
        }
        if c.heartbeat_interval.is_zero() || c.max_idle <= c.heartbeat_interval {
            return Err(Error::InvalidInput(
                "the idle window must be longer than the heartbeat interval".into(),
            ));
        }
        if !(c.endpoints.ws_url.starts_with("ws://") || c.endpoints.ws_url.starts_with("wss://")) {
            return Err(Error::InvalidInput(format!(
                "WebSocket URL {:?} must start with ws:// or wss://",
                c.endpoints.ws_url
            )));
        }
        for url in [&c.endpoints.api_url, &c.endpoints.web_url] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::InvalidInput(format!(
                    "URL {url:?} must start with http:// or https://"
                )));
            }
        }
        if c.upload.part_size < 5 * 1024 * 1024 || c.upload.part_threshold < c.upload.part_size {
            return Err(Error::InvalidInput(
                "parts must be at least 5 MB and the part threshold at least one part".into(),
            ));
        }
        if c.upload.max_attempts == 0 || c.image_limit == 0 {
            return Err(Error::InvalidInput(
                "upload attempts and the image limit must be at least 1".into(),
            ));
        }
        if c.transport != TransportMode::Http && c.ws_attempts == 0 {
            return Err(Error::InvalidInput(
                "ws_attempts must be at least 1 unless the transport is http".into(),
            ));
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sg_hosts_are_chosen_by_name() {
        let sg = Endpoints::tiktok_hosts("sg".parse().unwrap());
        assert_eq!(sg.ws_url, "wss://im-ws-sg.tiktok.com/ws/v2");
        assert_eq!(sg.api_url, "https://im-api-sg.tiktok.com");
        assert_eq!(
            Endpoints::tiktok_hosts("Global".parse().unwrap()),
            Endpoints::tiktok()
        );
        let err = "eu".parse::<TikTokHosts>().unwrap_err().to_string();
        assert!(err.contains("global or sg"), "{err}");
    }
}
