//! Gateway settings, and how `tiktok-dm serve` layers them: built-in defaults,
//! then a TOML config file, then `TIKTOK_DM_*` environment variables, then
//! command-line flags. Every value is validated once, here, with an error that
//! names where the bad value came from. This module reads nothing itself: the
//! CLI passes the file's text and the environment in.

use std::collections::BTreeMap;
use std::time::Duration;

use tiktok_dm_client::{Endpoints, TransportMode};

use crate::error::{Error, Result};

/// Per-account pacing: the least time between two sends from one TikTok
/// account, plus a random extra of up to `jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pacing {
    /// The least time between two sends of one account (zero: off).
    pub min_interval: Duration,
    /// Up to this much more, at random, each time.
    pub jitter: Duration,
}

impl Pacing {
    /// No pacing (the sandbox default).
    pub const OFF: Self = Self {
        min_interval: Duration::ZERO,
        jitter: Duration::ZERO,
    };
    /// The default against TikTok: at least 1.5 s between one account's sends,
    /// plus up to 1 s. An inferred, conservative value: TikTok publishes no limit.
    pub const TIKTOK_DEFAULT: Self = Self {
        min_interval: Duration::from_millis(1500),
        jitter: Duration::from_millis(1000),
    };
}

/// Everything the gateway needs to know, validated once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where TikTok (or the sandbox) is.
    pub endpoints: Endpoints,
    /// How the client talks to it.
    pub transport: TransportMode,
    /// How long `POST /v1/messages` waits for the outcome before answering 202.
    pub wait_for_delivery: Duration,
    /// How many sends may wait for their outcome at once; a send beyond it
    /// answers 202 at once, as with `Prefer: respond-async`. Each waiting send
    /// holds its connection and answer (about 20 KiB), so this bounds the
    /// memory that arrivals beyond the gateway's capacity can take.
    pub max_waiting_sends: usize,
    /// The largest image accepted.
    pub image_limit: u64,
    /// The most bytes of send bodies (with the images decoded from them) the
    /// handlers hold at once (never less than the largest body, twice); a
    /// send beyond waits with its body unread, which holds its sender back.
    pub request_memory: u64,
    /// The most image bytes deliveries hold in memory at once (never less
    /// than one image of `image_limit`); an image beyond waits, without its
    /// bytes, and is read from the store when there is room.
    pub image_memory: u64,
    /// Attempts that reached TikTok before a message is given up (`failed`,
    /// or `unknown` when it may have been delivered). Attempts that did not
    /// (TikTok unreachable) are retried until `delivery_deadline`.
    pub max_attempts: i64,
    /// How long after its acceptance a message is still tried.
    pub delivery_deadline: Duration,
    /// How long a request is kept once its every message is final (its ids
    /// and outcome; the content goes when each message ends): then it is
    /// deleted, with day and month usage counters as old.
    pub retention: Duration,
    /// The longest wait between two attempts (the waits grow from 1 s,
    /// doubling, each drawn at random below its bound).
    pub retry_max_delay: Duration,
    /// How long a claimed message is leased to a worker.
    pub lease: Duration,
    /// How long a gateway holds a lane (an account's deliveries and
    /// listening) without renewing it: a dead gateway's lanes move to
    /// another after this (see [`crate::ownership`]).
    pub owner_lease: Duration,
    /// SHA-256 of the admin key; the admin API is off without one.
    pub admin_key_hash: Option<[u8; 32]>,
    /// Per-account pacing.
    pub pacing: Pacing,
    /// A pooled client session unused this long is closed.
    pub session_idle: Duration,
    /// Requests taking longer are answered 408 (sends answer 202 before this).
    pub request_timeout: Duration,
    /// How long the client waits for TikTok's answer to one transmission of a
    /// send (no answer: the outcome is ambiguous and the send goes again with
    /// the same client message id).
    pub send_timeout: Duration,
    /// The most connections open at once; beyond, new ones wait in the
    /// listen queue until one closes.
    pub max_connections: usize,
    /// How long a connection may take to send a whole request head, from its
    /// opening or from its previous answer (so an unused kept-alive
    /// connection is closed after it too).
    pub header_timeout: Duration,
    /// A connection on which no byte moves for this long while none of its
    /// requests is being handled (an idle one, or one whose client does not
    /// read its answer) is closed.
    pub idle_timeout: Duration,
    /// The most requests of one API key in progress at once; beyond, 429.
    pub max_requests_per_key: usize,
    /// Keep a listening session for every stored account whose `listen` is on.
    pub listen_accounts: bool,
    /// Also catch up every listening account at this interval (pushes can be
    /// lost; 5 min by default); `None`: only after a reconnect.
    pub listen_poll: Option<Duration>,
    /// How long an event stays in the log (and can be replayed).
    pub event_retention: Duration,
    /// Webhooks may post to loopback, private and reserved addresses.
    pub allow_private_webhooks: bool,
    /// How long one webhook post may take, answer included.
    pub webhook_timeout: Duration,
    /// How long after its event a webhook delivery is still tried.
    pub webhook_max_age: Duration,
    /// The most webhook posts in flight at once.
    pub webhook_concurrency: usize,
}

impl Settings {
    /// The lease in milliseconds, as the store counts time.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(120_000)
    }

    /// The client configuration for a session with `secret`, over
    /// `transport` (the delivery worker's sessions use [`Settings::transport`];
    /// an account check uses HTTP alone).
    ///
    /// # Errors
    /// A secret that is not a TikTok session, or a configuration the client
    /// refuses.
    pub fn client_config(
        &self,
        secret: &secrecy::SecretString,
        transport: TransportMode,
    ) -> std::result::Result<tiktok_dm_client::Config, tiktok_dm_client::Error> {
        use secrecy::ExposeSecret as _;
        tiktok_dm_client::Config::builder(tiktok_dm_client::Credentials::parse(
            secret.expose_secret(),
        )?)
        .endpoints(self.endpoints.clone())
        .transport(transport)
        .image_limit(self.image_limit)
        .request_timeout(self.send_timeout)
        .build()
    }

    /// Defaults for the given endpoints (pacing off; see [`Pacing`]).
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            transport: TransportMode::Auto,
            wait_for_delivery: Duration::from_secs(30),
            max_waiting_sends: 2_000,
            image_limit: tiktok_dm_client::image::DEFAULT_IMAGE_LIMIT,
            image_memory: 256 * 1024 * 1024,
            request_memory: 256 * 1024 * 1024,
            max_attempts: 6,
            delivery_deadline: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(30 * 86_400),
            retry_max_delay: Duration::from_secs(30),
            lease: Duration::from_secs(120),
            owner_lease: Duration::from_secs(15),
            admin_key_hash: None,
            pacing: Pacing::OFF,
            session_idle: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(5),
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_requests_per_key: 256,
            listen_accounts: true,
            listen_poll: Some(Duration::from_secs(300)),
            event_retention: Duration::from_secs(7 * 86_400),
            allow_private_webhooks: false,
            webhook_timeout: Duration::from_secs(10),
            webhook_max_age: Duration::from_secs(24 * 3600),
            webhook_concurrency: 16,
        }
    }
}

/// Where a setting may come from, most important last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    File,
    Env,
    Flag,
}

/// Every setting `serve` knows: its name in the file (the environment variable
/// is `TIKTOK_DM_` and the name in capitals) and what it means.
pub const SETTINGS: &[(&str, &str)] = &[
    ("listen", "address to listen on (default 127.0.0.1:8787)"),
    (
        "database",
        "SQLite file path or sqlite:// URL (default tiktok-dm.sqlite), or a postgres:// URL",
    ),
    (
        "sandbox_url",
        "send to a sandbox at this base URL instead of TikTok",
    ),
    (
        "tiktok_hosts",
        "TikTok's IM hosts: global (im-api, im-ws) or sg (im-api-sg, im-ws-sg) (default global)",
    ),
    ("transport", "auto, ws or http (default auto)"),
    (
        "wait_for_delivery_secs",
        "how long a send waits for its outcome, 0-300 (default 30)",
    ),
    (
        "max_waiting_sends",
        "sends that may wait for their outcome at once; beyond, a send answers 202 at once, 0-1000000 (default 2000)",
    ),
    (
        "image_limit_bytes",
        "largest image, 1 KiB-100 MiB (default 20 MiB)",
    ),
    (
        "image_memory_mib",
        "image bytes held for delivery at once, 1-65536 MiB (default 256; at least one image)",
    ),
    (
        "request_memory_mib",
        "send bodies read and decoded at once, 1-65536 MiB (default 256; at least the largest body)",
    ),
    (
        "max_attempts",
        "delivery attempts that reached TikTok per message, 1-100 (default 6)",
    ),
    (
        "delivery_deadline_secs",
        "how long after acceptance a message is still tried, 60-2592000 (default 86400)",
    ),
    (
        "retention_days",
        "how long a request is kept once every message of it is final, then deleted, 1-3650 (default 30)",
    ),
    (
        "listen_accounts",
        "keep a listening session per stored account with listen on, true or false (default true)",
    ),
    (
        "listen_poll_secs",
        "also catch up listening accounts this often, 0-86400 (default 0: only after a reconnect)",
    ),
    (
        "event_retention_days",
        "how long an event stays in the log, 1-3650 (default 7)",
    ),
    (
        "allow_private_webhooks",
        "let webhooks post to loopback, private and reserved addresses, true or false (default false; true with serve --sandbox)",
    ),
    (
        "webhook_timeout_ms",
        "how long one webhook post may take, 100-60000 (default 10000)",
    ),
    (
        "webhook_max_age_hours",
        "how long after its event a webhook delivery is still tried, 1-720 (default 24)",
    ),
    (
        "webhook_concurrency",
        "webhook posts in flight at once, 1-1024 (default 16)",
    ),
    (
        "retry_max_delay_ms",
        "the longest wait between two attempts, 100-3600000 (default 30000)",
    ),
    (
        "lease_secs",
        "how long a claim holds a message unless renewed (deliveries renew it), 1-3600 (default 120)",
    ),
    (
        "owner_lease_secs",
        "how long a gateway holds an account's lane unless renewed; a dead gateway's accounts move after it, 3-600 (default 15)",
    ),
    (
        "pacing_min_interval_ms",
        "least time between one account's sends (default 1500; 0 with a sandbox)",
    ),
    (
        "pacing_jitter_ms",
        "random extra per send, up to this (default 1000; 0 with a sandbox)",
    ),
    (
        "session_idle_secs",
        "close a pooled TikTok session unused this long (default 600)",
    ),
    (
        "request_timeout_secs",
        "answer 408 after this, 1-3600 (default 60)",
    ),
    (
        "send_timeout_ms",
        "how long to wait for TikTok's answer to one transmission before sending it again with the same client message id, 100-120000 (default 5000)",
    ),
    (
        "max_connections",
        "connections open at once; beyond, new ones wait in the listen queue, 1-1000000 (default 512)",
    ),
    (
        "header_timeout_secs",
        "close a connection whose request head is not whole this long after its opening or previous answer, 1-300 (default 10)",
    ),
    (
        "idle_timeout_secs",
        "close a connection on which no byte moves this long while none of its requests is handled, 1-3600 (default 30)",
    ),
    (
        "max_requests_per_key",
        "requests of one API key in progress at once; beyond, 429, 1-1000000 (default 256)",
    ),
    (
        "master_key_file",
        "the vault key file (default: the SQLite file's path with .key; none with PostgreSQL)",
    ),
    (
        "admin_key_sha256",
        "hex SHA-256 of the admin key (enables the admin API)",
    ),
    (
        "admin_key",
        "the admin key itself; environment only, never in the file",
    ),
];

/// Environment variables other commands read, which `serve` leaves alone.
const OTHER_ENV: &[&str] = &["SESSION", "MASTER_KEY", "LOG"];

/// What `serve` runs with. Its `Debug` shows the database without a password.
#[derive(Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: String,
    /// Database URL or path.
    pub database: String,
    /// A sandbox base URL instead of TikTok.
    pub sandbox_url: Option<String>,
    /// The vault key file, when not the default.
    pub master_key_file: Option<String>,
    /// The gateway's settings (endpoints follow `sandbox_url`).
    pub settings: Settings,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("database", &tiktok_dm_store::database_shown(&self.database))
            .field("sandbox_url", &self.sandbox_url)
            .field("master_key_file", &self.master_key_file)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The layered raw values: name → (value, source, where it came from).
#[derive(Default)]
pub struct Layers {
    values: BTreeMap<String, (String, Source, String)>,
}

impl Layers {
    /// Reads a TOML config file's text; unknown keys and wrong types are errors.
    ///
    /// # Errors
    /// The text is not TOML, a key is unknown, or a value is not a string, number or boolean.
    pub fn file(&mut self, path: &str, text: &str) -> Result<()> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::Config(format!("{path}: {}", e.message())))?;
        for (key, value) in table {
            if key == "admin_key" {
                return Err(Error::Config(format!(
                    "{path}: admin_key must not be written in a file; put its SHA-256 in admin_key_sha256, or set TIKTOK_DM_ADMIN_KEY"
                )));
            }
            known(&key).map_err(|m| Error::Config(format!("{path}: {m}")))?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(Error::Config(format!(
                        "{path}: {key} must be a string or a number, not a {}",
                        other.type_str()
                    )));
                }
            };
            self.set(&key, text, Source::File, format!("{path}: {key}"));
        }
        Ok(())
    }

    /// Takes every `TIKTOK_DM_*` variable; one `serve` does not know is an error
    /// (a typo would otherwise be silently ignored).
    ///
    /// # Errors
    /// An unknown `TIKTOK_DM_` variable.
    pub fn env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) -> Result<()> {
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("TIKTOK_DM_") else {
                continue;
            };
            if OTHER_ENV.contains(&rest) {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            known(&key).map_err(|m| Error::Config(format!("environment variable {name}: {m}")))?;
            self.set(&key, value, Source::Env, name);
        }
        Ok(())
    }

    /// A command-line flag's value.
    pub fn flag(&mut self, key: &str, value: Option<String>) {
        if let Some(v) = value {
            self.set(key, v, Source::Flag, format!("--{}", key.replace('_', "-")));
        }
    }

    fn set(&mut self, key: &str, value: String, source: Source, origin: String) {
        let replace = self
            .values
            .get(key)
            .is_none_or(|(_, existing, _)| source >= *existing);
        if replace {
            self.values.insert(key.to_owned(), (value, source, origin));
        }
    }

    fn text(&self, key: &str) -> Option<(&str, &str)> {
        self.values
            .get(key)
            .map(|(v, _, origin)| (v.trim(), origin.as_str()))
    }

    fn number(&self, key: &str, range: std::ops::RangeInclusive<u64>) -> Result<Option<u64>> {
        let Some((value, origin)) = self.text(key) else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(Error::Config(format!(
                "{origin} = {value:?}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let Some((value, origin)) = self.text(key) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(Error::Config(format!(
                "{origin} = {value:?}: expected true or false"
            ))),
        }
    }

    /// A sandbox's endpoints, or TikTok's on the chosen hosts.
    fn endpoints(&self) -> Result<Endpoints> {
        if let Some((url, origin)) = self.text("sandbox_url") {
            if let Some((_, hosts_origin)) = self.text("tiktok_hosts") {
                return Err(Error::Config(format!(
                    "{hosts_origin} names TikTok's hosts, but {origin} sends to a sandbox instead; give one of them"
                )));
            }
            return Endpoints::sandbox(url)
                .map_err(|e| Error::Config(format!("{origin} = {url:?}: {e}")));
        }
        let hosts = match self.text("tiktok_hosts") {
            Some((value, origin)) => value.parse().map_err(|_| {
                Error::Config(format!("{origin} = {value:?}: expected global or sg"))
            })?,
            None => tiktok_dm_client::TikTokHosts::default(),
        };
        Ok(Endpoints::tiktok_hosts(hosts))
    }

    /// Validates everything into what `serve` runs with.
    ///
    /// # Errors
    /// The first bad value, naming its origin.
    pub fn resolve(&self) -> Result<ServeConfig> {
        let sandbox_url = self.text("sandbox_url").map(|(v, _)| v.to_owned());
        let settings = self.settings(sandbox_url.is_some())?;
        let listen = self.listen()?;
        let database = self.database()?;
        Ok(ServeConfig {
            listen,
            database,
            sandbox_url,
            master_key_file: self.text("master_key_file").map(|(v, _)| v.to_owned()),
            settings,
        })
    }

    /// The gateway's settings: the endpoints, pacing by where they lead, the
    /// transport, every number, the timeouts checked against each other, and
    /// the admin key.
    fn settings(&self, to_sandbox: bool) -> Result<Settings> {
        let mut settings = Settings::new(self.endpoints()?);
        if !to_sandbox {
            settings.pacing = Pacing::TIKTOK_DEFAULT;
        }
        if let Some((value, origin)) = self.text("transport") {
            settings.transport = value.parse().map_err(|_| {
                Error::Config(format!("{origin} = {value:?}: expected auto, ws or http"))
            })?;
        }
        self.apply_capacity(&mut settings)?;
        self.apply_delivery(&mut settings)?;
        self.apply_connections(&mut settings)?;
        self.apply_inbound(&mut settings)?;
        self.apply_webhooks(&mut settings)?;
        check_timeouts(&settings)?;
        check_webhook_age(&settings)?;
        settings.admin_key_hash = self.admin_key_hash()?;
        Ok(settings)
    }

    /// How long a send waits for its outcome, how many may wait, and the
    /// image and memory limits.
    fn apply_capacity(&self, settings: &mut Settings) -> Result<()> {
        if let Some(n) = self.number("wait_for_delivery_secs", 0..=300)? {
            settings.wait_for_delivery = Duration::from_secs(n);
        }
        if let Some(n) = self.number("max_waiting_sends", 0..=1_000_000)? {
            settings.max_waiting_sends = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = self.number("image_limit_bytes", 1024..=100 * 1024 * 1024)? {
            settings.image_limit = n;
        }
        if let Some(n) = self.number("image_memory_mib", 1..=65_536)? {
            settings.image_memory = n * 1024 * 1024;
        }
        if let Some(n) = self.number("request_memory_mib", 1..=65_536)? {
            settings.request_memory = n * 1024 * 1024;
        }
        Ok(())
    }

    /// How deliveries are attempted, leased and paced, and the session,
    /// request and send timeouts.
    fn apply_delivery(&self, settings: &mut Settings) -> Result<()> {
        if let Some(n) = self.number("max_attempts", 1..=100)? {
            settings.max_attempts = i64::try_from(n).unwrap_or(100);
        }
        if let Some(n) = self.number("delivery_deadline_secs", 60..=30 * 86_400)? {
            settings.delivery_deadline = Duration::from_secs(n);
        }
        if let Some(n) = self.number("retention_days", 1..=3650)? {
            settings.retention = Duration::from_secs(n * 86_400);
        }
        if let Some(n) = self.number("retry_max_delay_ms", 100..=3_600_000)? {
            settings.retry_max_delay = Duration::from_millis(n);
        }
        if let Some(n) = self.number("lease_secs", 1..=3600)? {
            settings.lease = Duration::from_secs(n);
        }
        if let Some(n) = self.number("owner_lease_secs", 3..=600)? {
            settings.owner_lease = Duration::from_secs(n);
        }
        if let Some(n) = self.number("pacing_min_interval_ms", 0..=600_000)? {
            settings.pacing.min_interval = Duration::from_millis(n);
        }
        if let Some(n) = self.number("pacing_jitter_ms", 0..=600_000)? {
            settings.pacing.jitter = Duration::from_millis(n);
        }
        if let Some(n) = self.number("session_idle_secs", 1..=86_400)? {
            settings.session_idle = Duration::from_secs(n);
        }
        if let Some(n) = self.number("request_timeout_secs", 1..=3600)? {
            settings.request_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.number("send_timeout_ms", 100..=120_000)? {
            settings.send_timeout = Duration::from_millis(n);
        }
        Ok(())
    }

    /// Listening and the event log.
    fn apply_inbound(&self, settings: &mut Settings) -> Result<()> {
        if let Some(on) = self.boolean("listen_accounts")? {
            settings.listen_accounts = on;
        }
        if let Some(n) = self.number("listen_poll_secs", 0..=86_400)? {
            settings.listen_poll = (n > 0).then(|| Duration::from_secs(n));
        }
        if let Some(n) = self.number("event_retention_days", 1..=3650)? {
            settings.event_retention = Duration::from_secs(n * 86_400);
        }
        Ok(())
    }

    /// Where webhooks may post, how long a post and a delivery may take, and
    /// how many posts run at once.
    fn apply_webhooks(&self, settings: &mut Settings) -> Result<()> {
        if let Some(on) = self.boolean("allow_private_webhooks")? {
            settings.allow_private_webhooks = on;
        }
        if let Some(n) = self.number("webhook_timeout_ms", 100..=60_000)? {
            settings.webhook_timeout = Duration::from_millis(n);
        }
        if let Some(n) = self.number("webhook_max_age_hours", 1..=720)? {
            settings.webhook_max_age = Duration::from_secs(n * 3600);
        }
        if let Some(n) = self.number("webhook_concurrency", 1..=1024)? {
            settings.webhook_concurrency = usize::try_from(n).unwrap_or(16);
        }
        Ok(())
    }

    /// How many connections may be open, how long one may take to send a
    /// request head or stay idle, and how many requests of one key may be in
    /// progress at once.
    fn apply_connections(&self, settings: &mut Settings) -> Result<()> {
        if let Some(n) = self.number("max_connections", 1..=1_000_000)? {
            settings.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = self.number("header_timeout_secs", 1..=300)? {
            settings.header_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.number("idle_timeout_secs", 1..=3600)? {
            settings.idle_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.number("max_requests_per_key", 1..=1_000_000)? {
            settings.max_requests_per_key = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(())
    }

    /// The admin key's SHA-256: hashed from `admin_key` (which wins), read
    /// from `admin_key_sha256`, or none (the admin API is off).
    fn admin_key_hash(&self) -> Result<Option<[u8; 32]>> {
        match (self.text("admin_key"), self.text("admin_key_sha256")) {
            (Some((key, origin)), _) if key.len() < 16 => Err(Error::Config(format!(
                "{origin}: the admin key must be at least 16 characters"
            ))),
            (Some((key, _)), _) => Ok(Some(crate::secrets::hash_key(key))),
            (None, Some((hex, origin))) => parse_sha256(hex).map(Some).ok_or_else(|| {
                Error::Config(format!("{origin}: expected 64 hexadecimal characters"))
            }),
            (None, None) => Ok(None),
        }
    }

    /// The address to listen on (default 127.0.0.1:8787).
    fn listen(&self) -> Result<String> {
        match self.text("listen") {
            Some((value, origin)) if value.parse::<std::net::SocketAddr>().is_err() => {
                Err(Error::Config(format!(
                    "{origin} = {value:?}: expected an address and port such as 127.0.0.1:8787"
                )))
            }
            Some((value, _)) => Ok(value.to_owned()),
            None => Ok("127.0.0.1:8787".to_owned()),
        }
    }

    /// The database URL or path (default `tiktok-dm.sqlite`), never empty.
    fn database(&self) -> Result<String> {
        let database = self
            .text("database")
            .map_or("tiktok-dm.sqlite", |(v, _)| v)
            .to_owned();
        if database.is_empty() {
            return Err(Error::Config("the database must not be empty".into()));
        }
        Ok(database)
    }
}

/// A request must be allowed longer than a send waits for its outcome.
fn check_timeouts(settings: &Settings) -> Result<()> {
    if settings.request_timeout <= settings.wait_for_delivery {
        return Err(Error::Config(format!(
            "request_timeout_secs ({}) must be longer than wait_for_delivery_secs ({}), or every slow send would time out instead of answering 202",
            settings.request_timeout.as_secs(),
            settings.wait_for_delivery.as_secs()
        )));
    }
    Ok(())
}

/// A webhook delivery must be tried no longer than its event is kept: the
/// retention sweep deletes an event with its deliveries, pending or not.
fn check_webhook_age(settings: &Settings) -> Result<()> {
    if settings.webhook_max_age > settings.event_retention {
        let days = settings.event_retention.as_secs() / 86_400;
        return Err(Error::Config(format!(
            "webhook_max_age_hours ({}) must not be longer than event_retention_days ({days}, {} hours): events are deleted with their webhook deliveries, so deliveries still being retried would be dropped; lower webhook_max_age_hours or raise event_retention_days",
            settings.webhook_max_age.as_secs() / 3600,
            days * 24
        )));
    }
    Ok(())
}

fn known(key: &str) -> std::result::Result<(), String> {
    if SETTINGS.iter().any(|(name, _)| *name == key) {
        Ok(())
    } else {
        let names: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown setting {key:?}; the settings are {}",
            names.join(", ")
        ))
    }
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
