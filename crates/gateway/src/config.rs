//! Gateway settings.

use std::time::Duration;

use tiktok_dm_client::{Endpoints, TransportMode};

/// Everything the gateway needs to know, validated once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where TikTok (or the sandbox) is.
    pub endpoints: Endpoints,
    /// How the client talks to it.
    pub transport: TransportMode,
    /// How long `POST /v1/messages` waits for the outcome before answering 202.
    pub wait_for_delivery: Duration,
    /// The largest image accepted.
    pub image_limit: u64,
    /// Attempts before a message is given up (`failed`, or `unknown` when it may
    /// have been delivered).
    pub max_attempts: i64,
    /// How long a claimed message is leased to a worker.
    pub lease: Duration,
    /// SHA-256 of the admin key; the admin API is off without one.
    pub admin_key_hash: Option<[u8; 32]>,
}

impl Settings {
    /// Defaults for the given endpoints.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            transport: TransportMode::Auto,
            wait_for_delivery: Duration::from_secs(30),
            image_limit: tiktok_dm_client::image::DEFAULT_IMAGE_LIMIT,
            max_attempts: 6,
            lease: Duration::from_secs(120),
            admin_key_hash: None,
        }
    }
}
