#![doc = include_str!("../README.md")]

pub mod backoff;
pub mod compose;
mod config;
mod conversations;
mod credentials;
mod discover;
mod error;
mod frontier;
pub mod heartbeat;
mod http;
pub mod image;
mod listen;
mod media;
mod session;
pub mod sigv4;
mod ticket_guard;
mod upload;
mod upload_hosts;

pub use config::{
    Config, ConfigBuilder, DEFAULT_USER_AGENT, Endpoints, TikTokHosts, TransportMode, UploadConfig,
};
pub use conversations::{ConversationSummary, HistoryPage};
pub use credentials::Credentials;
pub use discover::Identity;
pub use error::{Error, Result, RetryClass, SendRejection};
pub use frontier::ConnectionState;
pub use listen::{DEFAULT_HTTP_POLL, ListenOptions, Listened, Listener};
pub use media::BLOB_OVERHEAD;
pub use session::{Sent, Session, Target, Transport};
pub use tiktok_dm_proto as proto;
pub use tiktok_dm_proto::events::{Direction, Event, ReceivedImage, ReceivedKind, ReceivedMessage};
pub use upload::UploadedImage;
/// Whether an address is on the public Internet (the test for upload hosts,
/// and the gateway's for webhook URLs).
pub use upload_hosts::is_public as is_public_address;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Session>();
        check::<Config>();
        check::<Credentials>();
        check::<Error>();
    }
}
