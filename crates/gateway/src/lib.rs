#![doc = include_str!("../README.md")]

pub mod api;
pub mod config;
mod error;
pub mod outbox;
mod quota;
pub mod secrets;
mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;
