//! Image input: bytes, base64 (standard or URL-safe, padding optional, whitespace
//! and line breaks tolerated) and data URIs; format and dimensions from the bytes;
//! a size limit checked before decoding. Reading files is the caller's business:
//! this library reads no files.

mod b64;

use md5::{Digest as _, Md5};

pub use b64::decoded_len_upper_bound;
pub use tiktok_dm_proto::image::{FormatProblem, ImageFormat, Probe, probe};

/// The default size limit for one image: 20 MB.
pub const DEFAULT_IMAGE_LIMIT: u64 = 20 * 1024 * 1024;

/// Why an image input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageProblem {
    /// The bytes are not an acceptable image.
    #[error(transparent)]
    Format(#[from] FormatProblem),
    /// Over the size limit (for base64, known before decoding).
    #[error("the image is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size in bytes (for base64, the decoded size).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The base64 text is malformed.
    #[error("invalid base64 at character {position}: {reason}")]
    Base64 {
        /// 0-based character offset in the input as given.
        position: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The data URI is malformed.
    #[error("invalid data URI: {0}")]
    DataUri(String),
}

/// A validated image, ready to upload.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    bytes: Vec<u8>,
    probe: Probe,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("format", &self.probe.format)
            .field("width", &self.probe.width)
            .field("height", &self.probe.height)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Image {
    /// Validates raw bytes.
    ///
    /// # Errors
    /// Over `limit`, empty, or not a complete JPEG, PNG, GIF or WebP.
    pub fn from_bytes(bytes: Vec<u8>, limit: u64) -> Result<Self, ImageProblem> {
        if bytes.len() as u64 > limit {
            return Err(ImageProblem::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        let probe = probe(&bytes)?;
        Ok(Self { bytes, probe })
    }

    /// Decodes a base64 string or a `data:image/...;base64,` URI and validates it.
    ///
    /// # Errors
    /// As [`Image::from_bytes`], plus malformed base64 or data URIs. A base64 text
    /// whose length alone implies more than `limit` bytes is refused unread.
    pub fn from_text(text: &str, limit: u64) -> Result<Self, ImageProblem> {
        let trimmed = text.trim_start();
        let offset = text.len() - trimmed.len();
        let (payload, start) = if trimmed
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
        {
            let comma = trimmed
                .find(',')
                .ok_or_else(|| ImageProblem::DataUri("no ',' after the media type".into()))?;
            let meta = &trimmed[5..comma];
            if !meta
                .split(';')
                .any(|p| p.trim().eq_ignore_ascii_case("base64"))
            {
                return Err(ImageProblem::DataUri(
                    "only base64 data URIs are supported (add ;base64)".into(),
                ));
            }
            let media = meta.split(';').next().unwrap_or_default().trim();
            if !media.is_empty() && !media.to_ascii_lowercase().starts_with("image/") {
                return Err(ImageProblem::DataUri(format!(
                    "the media type {media:?} is not an image type"
                )));
            }
            (&trimmed[comma + 1..], offset + comma + 1)
        } else {
            (trimmed, offset)
        };
        let bytes = b64::decode(payload, limit).map_err(|e| match e {
            ImageProblem::Base64 { position, reason } => ImageProblem::Base64 {
                position: position + start,
                reason,
            },
            other => other,
        })?;
        Self::from_bytes(bytes, limit)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Never true: an empty image is refused.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Format and dimensions.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// Lowercase hex MD5 of the bytes (what the content JSON carries).
    pub fn md5_hex(&self) -> String {
        tiktok_dm_proto::access_key::hex(&Md5::digest(&self.bytes))
    }
}

#[cfg(test)]
mod tests;
