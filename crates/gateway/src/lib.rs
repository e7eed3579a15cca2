#![doc = include_str!("../README.md")]

pub mod admin;
pub mod api;
pub mod budget;
pub mod config;
pub mod depth;
mod error;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod pool;
mod quota;
pub mod secrets;
mod startup;
pub mod state;
pub mod waiters;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

/// Unix time in milliseconds, the unit of every time the gateway stores.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
