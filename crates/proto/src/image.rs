//! Image format detection from magic bytes (never from names), dimensions from the
//! header, and a check that the file is complete. Pure: used by the client to
//! validate input and by the sandbox to describe committed uploads.

use std::fmt;

/// The formats TikTok DMs accept here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// GIF.
    Gif,
    /// WebP.
    Webp,
}

impl ImageFormat {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
        })
    }
}

/// Why bytes are not an acceptable image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatProblem {
    /// No bytes at all.
    #[error("the image is empty")]
    Empty,
    /// A recognised format that is not accepted.
    #[error("{0} images are not supported; send JPEG, PNG, GIF or WebP")]
    Unsupported(&'static str),
    /// Nothing recognisable.
    #[error("the data is not an image ({0}); send JPEG, PNG, GIF or WebP")]
    Unknown(&'static str),
    /// A supported format, cut short or malformed.
    #[error("the {format} image is truncated or corrupt: {detail}")]
    Corrupt {
        /// The format the header claims.
        format: ImageFormat,
        /// What is wrong.
        detail: &'static str,
    },
}

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}
fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// Identifies the format and reads the dimensions.
///
/// # Errors
/// An empty input, another format (named), or a truncated or corrupt image.
pub fn probe(b: &[u8]) -> Result<Probe, FormatProblem> {
    if b.is_empty() {
        return Err(FormatProblem::Empty);
    }
    let (format, dims) = if b.starts_with(&[0xff, 0xd8, 0xff]) {
        (ImageFormat::Jpeg, jpeg(b))
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        (ImageFormat::Png, png(b))
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        (ImageFormat::Gif, gif(b))
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        (ImageFormat::Webp, webp(b))
    } else {
        return Err(identify_other(b));
    };
    let (width, height) = dims.map_err(|detail| FormatProblem::Corrupt { format, detail })?;
    if width == 0 || height == 0 {
        return Err(FormatProblem::Corrupt {
            format,
            detail: "the header gives a zero width or height",
        });
    }
    Ok(Probe {
        format,
        width,
        height,
    })
}

type Dims = Result<(u32, u32), &'static str>;

fn png(b: &[u8]) -> Dims {
    if b.get(12..16) != Some(b"IHDR") {
        return Err("the IHDR header is missing");
    }
    let dims = be32(b, 16)
        .zip(be32(b, 20))
        .ok_or("the header is cut short")?;
    if !b.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]) {
        return Err("the file does not end with an IEND chunk");
    }
    Ok(dims)
}

fn gif(b: &[u8]) -> Dims {
    let dims = le16(b, 6)
        .zip(le16(b, 8))
        .ok_or("the header is cut short")?;
    let end = b
        .iter()
        .rposition(|&x| x != 0)
        .ok_or("the file is empty after the header")?;
    if b[end] != 0x3b {
        return Err("the file does not end with the GIF trailer");
    }
    Ok(dims)
}

fn webp(b: &[u8]) -> Dims {
    let riff = le32(b, 4).ok_or("the header is cut short")? as usize;
    if riff.saturating_add(8) > b.len() {
        return Err("the file is shorter than its RIFF header says");
    }
    match b.get(12..16).ok_or("the header is cut short")? {
        b"VP8 " => {
            if b.get(23..26) != Some(&[0x9d, 0x01, 0x2a]) {
                return Err("the VP8 frame header is missing");
            }
            let w = le16(b, 26).ok_or("the header is cut short")? & 0x3fff;
            let h = le16(b, 28).ok_or("the header is cut short")? & 0x3fff;
            Ok((w, h))
        }
        b"VP8L" => {
            if b.get(20) != Some(&0x2f) {
                return Err("the VP8L signature is missing");
            }
            let bits = le32(b, 21).ok_or("the header is cut short")?;
            Ok(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => {
            let w = le24(b, 24).ok_or("the header is cut short")? + 1;
            let h = le24(b, 27).ok_or("the header is cut short")? + 1;
            Ok((w, h))
        }
        _ => Err("unknown WebP chunk"),
    }
}

fn jpeg(b: &[u8]) -> Dims {
    let mut dims = None;
    let mut i = 2;
    while i < b.len() {
        if b[i] != 0xff {
            return Err("a segment marker is missing");
        }
        // Fill bytes: any number of 0xff before a marker.
        while b.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        let marker = *b.get(i + 1).ok_or("the file ends inside a marker")?;
        i += 2;
        match marker {
            0xd8 | 0x01 | 0xd0..=0xd7 => continue,
            0xd9 => return Err("the image ends before its frame header"),
            _ => {}
        }
        let len = be16(b, i).ok_or("the file ends inside a segment")? as usize;
        if len < 2 || i + len > b.len() {
            return Err("a segment runs past the end of the file");
        }
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = be16(b, i + 3).ok_or("the frame header is cut short")?;
            let w = be16(b, i + 5).ok_or("the frame header is cut short")?;
            dims = Some((w, h));
        }
        if marker == 0xda {
            break;
        }
        i += len;
    }
    let dims = dims.ok_or("no frame header (SOF) before the image data")?;
    let end = b.iter().rposition(|&x| x != 0).unwrap_or(0);
    if end < 1 || b[end - 1..=end] != [0xff, 0xd9] {
        return Err("the file does not end with an end-of-image marker");
    }
    Ok(dims)
}

/// Names what other data looks like, for the error message.
fn identify_other(b: &[u8]) -> FormatProblem {
    let brand = b.get(4..12);
    if brand.is_some_and(|x| x.starts_with(b"ftyp")) {
        let kind = &b[8..12];
        return match kind {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" | b"heim" | b"heis" => {
                FormatProblem::Unsupported("HEIC/HEIF")
            }
            b"avif" | b"avis" => FormatProblem::Unsupported("AVIF"),
            _ => FormatProblem::Unknown("an MP4/QuickTime container"),
        };
    }
    if b.starts_with(b"%PDF") {
        return FormatProblem::Unsupported("PDF");
    }
    if b.starts_with(b"BM") {
        return FormatProblem::Unsupported("BMP");
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return FormatProblem::Unsupported("TIFF");
    }
    if b.starts_with(&[0, 0, 1, 0]) {
        return FormatProblem::Unsupported("ICO");
    }
    if b.starts_with(b"PK\x03\x04") {
        return FormatProblem::Unknown("a ZIP archive");
    }
    let head = &b[..b.len().min(512)];
    // A multi-byte character cut by the 512-byte window still counts as text.
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let printable = |t: &str| {
        !t.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    };
    if let Some(text) = text.filter(|t| printable(t)) {
        let lower = text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .to_ascii_lowercase();
        if lower.starts_with("<svg") || (lower.starts_with("<?xml") && lower.contains("<svg")) {
            return FormatProblem::Unsupported("SVG");
        }
        if lower.starts_with("data:") {
            return FormatProblem::Unknown("a data URI given as raw bytes");
        }
        return FormatProblem::Unknown("text");
    }
    FormatProblem::Unknown("unrecognised binary data")
}
