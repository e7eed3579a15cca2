//! A text, an image, or both, sent as the original n8n node did: everything is
//! validated before anything is sent; the image goes first and the text second
//! (like a caption under a photo); the outcome lists what was delivered.

use tiktok_dm_proto::content::MessageText;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::session::{Sent, Session, Target};

/// What one message of a composed send is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An image message.
    Image,
    /// A text message.
    Text,
}

/// A validated text and/or image.
#[derive(Debug)]
pub struct Outgoing {
    text: Option<MessageText>,
    image: Option<Image>,
}

impl Outgoing {
    /// Validates the parts. A blank text counts as no text.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when both are missing ("either text or image must
    /// be provided") or the text is over the limit.
    pub fn new(text: Option<&str>, image: Option<Image>) -> Result<Self> {
        let text = match text.filter(|t| !t.trim().is_empty()) {
            Some(t) => Some(MessageText::parse(t).map_err(|e| Error::InvalidInput(e.to_string()))?),
            None => None,
        };
        if text.is_none() && image.is_none() {
            return Err(Error::InvalidInput(
                "either text or image must be provided".into(),
            ));
        }
        Ok(Self { text, image })
    }

    /// The bytes of the image, if any.
    pub fn image_bytes(&self) -> u64 {
        self.image.as_ref().map_or(0, Image::len)
    }
}

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
    /// Sends the image (if any), then the text (if any).
    pub async fn send_outgoing(&self, target: &Target, outgoing: Outgoing) -> Outcome {
        let mut outcome = Outcome {
            sent: Vec::new(),
            failed: None,
            not_attempted: Vec::new(),
        };
        if let Some(image) = outgoing.image {
            match self.send_image(target, image).await {
                Ok(sent) => outcome.sent.push((Kind::Image, sent)),
                Err(e) => {
                    outcome.failed = Some((Kind::Image, e));
                    if outgoing.text.is_some() {
                        outcome.not_attempted.push(Kind::Text);
                    }
                    return outcome;
                }
            }
        }
        if let Some(text) = outgoing.text {
            match self
                .send_text_with_id(target, &text, &Self::new_client_message_id())
                .await
            {
                Ok(sent) => outcome.sent.push((Kind::Text, sent)),
                Err(e) => outcome.failed = Some((Kind::Text, e)),
            }
        }
        outcome
    }
}
