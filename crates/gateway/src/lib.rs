#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod admin;
pub mod api;
pub mod budget;
pub mod config;
pub mod depth;
mod error;
pub mod inbound;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod ownership;
pub mod pool;
mod quota;
pub mod secrets;
pub mod short_ids;
mod startup;
pub mod state;
pub mod waiters;
pub mod webhooks;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

/// Unix time in milliseconds, the unit of every time the gateway stores.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `d` in milliseconds, as the store counts time; at most a quarter of
/// `i64::MAX`, so that a time plus it cannot overflow.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(i64::MAX / 4, |ms| ms.min(i64::MAX / 4))
}

/// A time in milliseconds as RFC 3339 in UTC, with milliseconds
/// (`2026-12-03T07:00:00.123Z`); times before 1970 show as 1970.
pub fn rfc3339_ms(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    let secs = tiktok_dm_proto::time::Utc::from_unix(ms / 1000).rfc3339();
    match secs.strip_suffix('Z') {
        Some(base) => format!("{base}.{:03}Z", ms % 1000),
        None => secs,
    }
}
