//! Message content JSON (PROTOCOL.md 3.1-3.2) and the text limit (3.7).

use serde::Deserialize;

use crate::error::DecodeError;

/// TikTok web's text limit, as the web composer counts it: UTF-16 code units
/// (JavaScript string length). The unit is our reading of the "/6000" counter.
pub const MAX_TEXT_UTF16_UNITS: usize = 6000;

/// `message_type` of a TikTok web text message (seen in live captures).
pub const MESSAGE_TYPE_TEXT: i32 = 7;

/// `aweType` of a TikTok web text message (seen in live captures).
pub const AWE_TYPE_TEXT: i64 = 0;

/// A text that may be sent: not blank, and within the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Checks `text` against [`MAX_TEXT_UTF16_UNITS`].
    ///
    /// # Errors
    /// Blank text, or text over the limit (the message gives both counts).
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        Self::parse_with_limit(text, MAX_TEXT_UTF16_UNITS)
    }

    /// Checks `text` against a custom limit in UTF-16 code units.
    ///
    /// # Errors
    /// As [`MessageText::parse`].
    pub fn parse_with_limit(text: &str, limit: usize) -> Result<Self, DecodeError> {
        if text.trim().is_empty() {
            return Err(DecodeError::Invalid("text is empty".into()));
        }
        let units = utf16_len(text);
        if units > limit {
            return Err(DecodeError::Invalid(format!(
                "text is {units} characters long (counted as UTF-16 code units); the limit is {limit}"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The content JSON TikTok web sends: `{"aweType":0,"text":"..."}`, compact,
    /// with raw UTF-8 and the escapes `JSON.stringify` makes.
    pub fn content_json(&self) -> String {
        text_content_json(&self.0)
    }
}

/// The length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `{"aweType":0,"text":<text>}` exactly as the web client writes it.
pub fn text_content_json(text: &str) -> String {
    // serde_json escapes exactly what JSON.stringify escapes (quote, backslash,
    // control characters; `/` and non-ASCII stay raw), so it can write the value.
    let escaped = serde_json::Value::String(text.to_owned()).to_string();
    let mut out = String::with_capacity(escaped.len() + 20);
    out.push_str("{\"aweType\":0,\"text\":");
    out.push_str(&escaped);
    out.push('}');
    out
}

/// `message_type` of a TikTok web image message, `private_image` (PROTOCOL.md
/// 10.3, from a working open-source client).
pub const MESSAGE_TYPE_PRIVATE_IMAGE: i32 = 1802;

/// `scene` of a `private_image` message.
pub const SCENE_PRIVATE_IMAGE: &str = "private_image";

/// What an inbound content JSON says, as far as a text reader cares.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ParsedContent {
    /// `aweType`: 0 plain text, 700 text from app users, 2702 image, ...
    #[serde(rename = "aweType", default)]
    pub awe_type: Option<i64>,
    /// The text, when the content has one.
    #[serde(default)]
    pub text: Option<String>,
}

/// Reads a content JSON object. Extra keys are ignored.
///
/// # Errors
/// Content that is not a JSON object.
pub fn parse_content(content: &str) -> Result<ParsedContent, DecodeError> {
    serde_json::from_str(content)
        .map_err(|e| DecodeError::Invalid(format!("content is not a JSON object: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_content_matches_the_captured_bytes() {
        assert_eq!(
            text_content_json("probe6"),
            r#"{"aweType":0,"text":"probe6"}"#
        );
    }

    #[test]
    fn text_content_escapes_like_json_stringify() {
        assert_eq!(
            text_content_json("a\"b\\c/d\n\u{1}é😀"),
            "{\"aweType\":0,\"text\":\"a\\\"b\\\\c/d\\n\\u0001é😀\"}"
        );
    }

    #[test]
    fn the_limit_counts_utf16_code_units() {
        let emoji = "😀".repeat(3000); // 6000 UTF-16 units, 3000 chars
        assert!(MessageText::parse(&emoji).is_ok());
        let over = format!("{emoji}a");
        let err = MessageText::parse(&over).unwrap_err().to_string();
        assert!(err.contains("6001") && err.contains("6000"), "{err}");
        assert_eq!(
            MessageText::parse("  \n").unwrap_err().to_string(),
            "text is empty"
        );
    }

    #[test]
    fn app_user_content_with_extra_keys_is_read() {
        let c = parse_content(r#"{"isDefault":false,"text":"hey","aweType":700}"#).unwrap();
        assert_eq!((c.awe_type, c.text.as_deref()), (Some(700), Some("hey")));
    }
}
