#![doc = include_str!("../README.md")]

#[macro_use]
mod macros;

pub mod access_key;
pub mod cmd;
pub mod codec;
pub mod content;
pub mod enums;
mod error;
pub mod events;
mod gzip;
pub mod ids;
pub mod image;
pub mod lz4;
pub mod message;
pub mod schema;
pub mod status;
pub mod time;
pub mod wire;

pub use error::DecodeError;
pub use wire::Message;
