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

/// `message_type` of a Douyin web image message (Douyin); TikTok web's is unknown.
pub const MESSAGE_TYPE_IMAGE_DOUYIN: i32 = 27;

/// `aweType` of a Douyin web image message (Douyin).
pub const AWE_TYPE_IMAGE: i64 = 2702;

/// What goes into an image message's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageContent<'a> {
    /// `Encryption.Uri` from Commit.
    pub oid: &'a str,
    /// `Encryption.SecretKey` (64 hex characters).
    pub skey: &'a str,
    /// File size in bytes.
    pub data_size: u64,
    /// Lowercase hex MD5 of the file.
    pub md5: &'a str,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// `aweType` (2702 on Douyin).
    pub awe_type: i64,
}

/// The image content JSON in the captured key order (PROTOCOL.md 3.3):
/// `resource_url{oid, skey, data_size, md5}`, `cover_height`, `cover_width`,
/// `check_pics`, `md5`, `from_gallery`, `aweType`.
pub fn image_content_json(c: &ImageContent<'_>) -> String {
    let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
    format!(
        "{{\"resource_url\":{{\"oid\":{},\"skey\":{},\"data_size\":{},\"md5\":{}}},\"cover_height\":{},\"cover_width\":{},\"check_pics\":[],\"md5\":{},\"from_gallery\":1,\"aweType\":{}}}",
        s(c.oid),
        s(c.skey),
        c.data_size,
        s(c.md5),
        c.height,
        c.width,
        s(c.md5),
        c.awe_type
    )
}

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
    fn image_content_reproduces_the_douyin_capture() {
        let expected = r#"{"resource_url":{"oid":"tos-cn-o-00061/f1420b39854f4b29871531e219ccf71d","skey":"f1ff51951b8df3c48784ef976770651c9611cda7da665d5124a8bcefd3887d0e","data_size":1856228,"md5":"fd249f3a6f52af6b0f944a1cbb364980"},"cover_height":2120,"cover_width":1190,"check_pics":[],"md5":"fd249f3a6f52af6b0f944a1cbb364980","from_gallery":1,"aweType":2702}"#;
        let built = image_content_json(&ImageContent {
            oid: "tos-cn-o-00061/f1420b39854f4b29871531e219ccf71d",
            skey: "f1ff51951b8df3c48784ef976770651c9611cda7da665d5124a8bcefd3887d0e",
            data_size: 1856228,
            md5: "fd249f3a6f52af6b0f944a1cbb364980",
            width: 1190,
            height: 2120,
            awe_type: AWE_TYPE_IMAGE,
        });
        assert_eq!(built, expected);
    }

    #[test]
    fn app_user_content_with_extra_keys_is_read() {
        let c = parse_content(r#"{"isDefault":false,"text":"hey","aweType":700}"#).unwrap();
        assert_eq!((c.awe_type, c.text.as_deref()), (Some(700), Some("hey")));
    }
}
