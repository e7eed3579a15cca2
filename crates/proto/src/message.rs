//! What one send is, in one place for every crate: where it goes ([`Target`]),
//! what each of its messages is ([`Kind`], [`Content`]), their order
//! ([`Outgoing::into_contents`]: the image first, then the text, like a caption
//! under a photo), and the stable code a failed message is recorded with
//! ([`FailureCode`]).
//!
//! Adding a kind of message (a sticker, a video) is a line in `kinds!` and a
//! variant in [`Content`]; the compiler then lists every arm to write: the
//! client's send, the store's columns, the gateway's input (ARCHITECTURE.md
//! lists the files).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::content::MessageText;
use crate::error::DecodeError;
use crate::ids::{ConversationId, ConversationShortId};

macro_rules! kinds {
    ($($variant:ident = $name:literal, $doc:literal;)*) => {
        /// What one message is. Stored and answered by its name
        /// ([`Kind::as_str`]), which is also its JSON form.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kind {
            $(#[doc = $doc] $variant,)*
        }

        impl Kind {
            /// Every kind.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// Its name: how the kind is stored and answered.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

kinds! {
    Image = "image", "An image message (`private_image`, 1802).";
    Text = "text", "A text message (7).";
}

impl Kind {
    /// The kind named `name` ([`Kind::as_str`]'s inverse).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown message kind {name:?}")))
    }
}

/// One message's content. `I` is how an image is held where it is used: the
/// client's probed image, the store's bytes, a stored image's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content<I> {
    /// An image.
    Image(I),
    /// A text.
    Text(MessageText),
}

impl<I> Content<I> {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Image(_) => Kind::Image,
            Self::Text(_) => Kind::Text,
        }
    }

    /// The same content with its image turned into another form.
    pub fn map_image<J>(self, f: impl FnOnce(I) -> J) -> Content<J> {
        match self {
            Self::Image(i) => Content::Image(f(i)),
            Self::Text(t) => Content::Text(t),
        }
    }

    /// The text, for a text.
    pub fn text(&self) -> Option<&MessageText> {
        match self {
            Self::Text(t) => Some(t),
            Self::Image(_) => None,
        }
    }

    /// The image, for an image.
    pub fn image(&self) -> Option<&I> {
        match self {
            Self::Image(i) => Some(i),
            Self::Text(_) => None,
        }
    }
}

/// A send: a text, an image, or both (never neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing<I> {
    image: Option<I>,
    text: Option<MessageText>,
}

impl<I> Outgoing<I> {
    /// The parts as given; `None` when both are missing.
    pub fn from_parts(text: Option<MessageText>, image: Option<I>) -> Option<Self> {
        (text.is_some() || image.is_some()).then_some(Self { image, text })
    }

    /// Reads user input: a blank text counts as no text.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] when both are missing ("either text or image
    /// must be provided") or the text is over the limit.
    pub fn new(text: Option<&str>, image: Option<I>) -> Result<Self, DecodeError> {
        let text = text
            .filter(|t| !t.trim().is_empty())
            .map(MessageText::parse)
            .transpose()?;
        Self::from_parts(text, image)
            .ok_or_else(|| DecodeError::Invalid("either text or image must be provided".into()))
    }

    /// The text, if any.
    pub fn text(&self) -> Option<&MessageText> {
        self.text.as_ref()
    }

    /// The image, if any.
    pub fn image(&self) -> Option<&I> {
        self.image.as_ref()
    }

    /// Its messages in delivery order: the image first, then the text. Every
    /// crate takes the order from here.
    pub fn into_contents(self) -> impl Iterator<Item = Content<I>> {
        self.image
            .map(Content::Image)
            .into_iter()
            .chain(self.text.map(Content::Text))
    }
}

/// Where a message goes: an existing conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The conversation id.
    pub conversation_id: ConversationId,
    /// Its server-issued short id.
    pub conversation_short_id: ConversationShortId,
    /// The conversation's inbox type (0 unless known; 3 for message requests).
    pub inbox_type: i32,
}

impl Target {
    /// Parses user input for both ids (inbox type 0).
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] naming the bad id.
    pub fn parse(conversation_id: &str, conversation_short_id: &str) -> Result<Self, DecodeError> {
        Ok(Self {
            conversation_id: ConversationId::parse(conversation_id)?,
            conversation_short_id: ConversationShortId::parse(conversation_short_id)?,
            inbox_type: 0,
        })
    }
}

macro_rules! failure_codes {
    ($($variant:ident = $code:literal, $meaning:literal;)*) => {
        /// Why a message was not delivered, as a stable code: what the client
        /// answers in JSON, what the gateway records for a failed delivery,
        /// and what its API maps (exhaustively) to its own error codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum FailureCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl FailureCode {
            /// Every code.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The code as written in JSON and stored.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }
        }
    };
}

failure_codes! {
    SessionInvalidFormat = "session_invalid_format", "The session input is not a cookie header, a cookie export or a sessionid.";
    SessionRejected = "session_rejected", "TikTok does not take the session as logged in.";
    InvalidInput = "invalid_input", "A value given to the client is invalid (text, ids, configuration).";
    ImageTooLarge = "image_too_large", "The image is over the image limit.";
    ImageInvalid = "image_invalid", "The image cannot be read or is of an unsupported format.";
    GatewayRejected = "gateway_rejected", "TikTok's gateway refused the request (a protocol-level rejection).";
    InvalidTicket = "invalid_ticket", "TikTok refused the request's ticket.";
    ConversationNotFound = "conversation_not_found", "TikTok does not know the conversation, or the account is not in it.";
    RequestRejected = "request_rejected", "TikTok called the request invalid (status 4).";
    RateLimited = "rate_limited", "TikTok rate-limited the account.";
    UpstreamError = "upstream_error", "TikTok answered with a server error or an unexpected HTTP status.";
    BusinessRejected = "business_rejected", "TikTok refused the message with a business code.";
    OutcomeUnknown = "outcome_unknown", "No answer came: the message may or may not have been delivered.";
    ConnectionFailed = "connection_failed", "TikTok could not be reached, or the session's identity not read.";
    WebsocketUnavailable = "websocket_unavailable", "TikTok refused the WebSocket handshake.";
    UploadFailed = "upload_failed", "A step of the image upload failed.";
}

impl FailureCode {
    /// The code named `code` ([`FailureCode::as_str`]'s inverse).
    pub fn from_name(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_goes_before_its_caption() {
        let both = Outgoing::new(Some("caption"), Some(1u8)).unwrap();
        let kinds: Vec<Kind> = both.into_contents().map(|c| c.kind()).collect();
        assert_eq!(kinds, [Kind::Image, Kind::Text]);
        let text = Outgoing::<u8>::new(Some("hi"), None).unwrap();
        assert_eq!(text.into_contents().count(), 1);
    }

    #[test]
    fn a_blank_text_without_an_image_is_refused() {
        let err = Outgoing::<u8>::new(Some("  "), None).unwrap_err();
        assert_eq!(err.to_string(), "either text or image must be provided");
    }

    #[test]
    fn a_kind_is_written_and_read_as_its_name() {
        for k in Kind::ALL {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), *k);
        }
        assert!(serde_json::from_str::<Kind>("\"sticker\"").is_err());
    }

    #[test]
    fn names_and_codes_read_back() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(*k));
        }
        for c in FailureCode::ALL {
            assert_eq!(FailureCode::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(Kind::from_name("sticker"), None);
    }
}
