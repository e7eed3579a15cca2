//! A text, an image, or both, sent as the original n8n node did: everything is
//! validated before anything is sent; the messages go in the order
//! [`Outgoing::into_contents`](tiktok_dm_proto::message::Outgoing::into_contents)
//! gives (the image first, the text second, like a caption under a photo); the
//! outcome lists what was delivered.

pub use tiktok_dm_proto::message::{Content, Kind};

use crate::error::Error;
use crate::image::Image;
use crate::session::{Sent, Session, Target};

/// A validated text and/or image ([`Outgoing::new`](tiktok_dm_proto::message::Outgoing::new)
/// reads user input: a blank text counts as no text).
pub type Outgoing = tiktok_dm_proto::message::Outgoing<Image>;

/// What happened to a composed send.
#[derive(Debug)]
pub struct Outcome {
    /// Delivered messages, in order.
    pub sent: Vec<(Kind, Sent)>,
    /// The message that failed (and those after it were not attempted).
    pub failed: Option<(Kind, Error)>,
    /// Messages not attempted because an earlier one failed.
    pub not_attempted: Vec<Kind>,
}

impl Outcome {
    /// Whether everything was delivered.
    pub fn is_success(&self) -> bool {
        self.failed.is_none()
    }
}

impl Session {
    /// Sends the messages of `outgoing` in order, each with a new client
    /// message id; after a failure, the rest are not attempted.
    pub async fn send_outgoing(&self, target: &Target, outgoing: Outgoing) -> Outcome {
        let mut outcome = Outcome {
            sent: Vec::new(),
            failed: None,
            not_attempted: Vec::new(),
        };
        for content in outgoing.into_contents() {
            let kind = content.kind();
            if outcome.failed.is_some() {
                outcome.not_attempted.push(kind);
                continue;
            }
            let id = Self::new_client_message_id();
            let sent = match content {
                Content::Image(image) => self.send_image_with_id(target, image, &id).await,
                Content::Text(text) => self.send_text_with_id(target, &text, &id).await,
            };
            match sent {
                Ok(sent) => outcome.sent.push((kind, sent)),
                Err(e) => outcome.failed = Some((kind, e)),
            }
        }
        outcome
    }
}
