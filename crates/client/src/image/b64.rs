//! Tolerant base64: either alphabet, padding optional, ASCII whitespace anywhere.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::ImageProblem;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

/// The most bytes `symbols` base64 characters can decode to.
pub fn decoded_len_upper_bound(symbols: usize) -> u64 {
    (symbols as u64 / 4) * 3 + (symbols as u64 % 4).saturating_sub(1)
}

fn problem(position: usize, reason: impl Into<String>) -> ImageProblem {
    ImageProblem::Base64 {
        position,
        reason: reason.into(),
    }
}

/// The offset in `text` of the `n`th non-whitespace byte.
fn original_position(text: &[u8], n: usize) -> usize {
    text.iter()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_whitespace())
        .nth(n)
        .map_or(text.len(), |(i, _)| i)
}

/// Decodes with SIMD when the input is well formed (the common case), falling
/// back to [`decode_exact`] for everything else, which also finds where an
/// error is. The exact size check runs only when the input's raw length could
/// decode to more than the limit.
pub(super) fn decode(text: &str, limit: u64) -> Result<Vec<u8>, ImageProblem> {
    let raw = text.as_bytes();
    if decoded_len_upper_bound(raw.len()) <= limit && !text.trim().is_empty() {
        if let Some(bytes) = decode_fast(raw) {
            return Ok(bytes);
        }
    }
    decode_exact(text, limit)
}

fn decode_fast(raw: &[u8]) -> Option<Vec<u8>> {
    decode_simd(raw)
        .or_else(|| {
            // Line-wrapped base64 (MIME, PEM-style): drop the line breaks by copying
            // whole lines between them, then decode again.
            let mut joined = Vec::with_capacity(raw.len());
            let mut start = 0;
            for at in memchr::memchr2_iter(b'\n', b'\r', raw) {
                joined.extend_from_slice(&raw[start..at]);
                start = at + 1;
            }
            joined.extend_from_slice(&raw[start..]);
            (joined.len() < raw.len())
                .then(|| decode_simd(&joined))
                .flatten()
        })
        // Other whitespace or missing padding, standard alphabet (WHATWG forgiving base64).
        .or_else(|| base64_simd::forgiving_decode_to_vec(raw).ok())
}

fn decode_simd(raw: &[u8]) -> Option<Vec<u8>> {
    let engines = if raw.last() == Some(&b'=') {
        [base64_simd::STANDARD, base64_simd::URL_SAFE]
    } else {
        [base64_simd::STANDARD_NO_PAD, base64_simd::URL_SAFE_NO_PAD]
    };
    engines
        .iter()
        .find_map(|engine| engine.decode_to_vec(raw).ok())
}

fn decode_exact(text: &str, limit: u64) -> Result<Vec<u8>, ImageProblem> {
    let raw = text.as_bytes();
    let whitespace = raw.iter().filter(|b| b.is_ascii_whitespace()).count();
    let symbols = raw.len() - whitespace;
    if symbols == 0 {
        return Err(super::FormatProblem::Empty.into());
    }
    let padding = raw
        .iter()
        .rev()
        .filter(|b| !b.is_ascii_whitespace())
        .take(2)
        .filter(|b| **b == b'=')
        .count();
    let size = decoded_len_upper_bound(symbols - padding);
    if size > limit {
        return Err(ImageProblem::TooLarge { size, limit });
    }
    let url_safe = raw.iter().position(|b| matches!(b, b'-' | b'_'));
    let standard = raw.iter().position(|b| matches!(b, b'+' | b'/'));
    if let (Some(u), Some(s)) = (url_safe, standard) {
        return Err(problem(
            u.max(s),
            "mixes the standard (+/) and URL-safe (-_) alphabets",
        ));
    }
    let engine = if url_safe.is_some() {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let compact;
    let input: &[u8] = if whitespace == 0 {
        raw
    } else {
        compact = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>();
        &compact
    };
    engine.decode(input).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, byte) => {
            let shown = if byte.is_ascii_graphic() {
                format!("{:?}", byte as char)
            } else {
                format!("byte 0x{byte:02x}")
            };
            problem(
                original_position(raw, at),
                format!("{shown} is not a base64 character"),
            )
        }
        base64::DecodeError::InvalidLastSymbol(at, _) => problem(
            original_position(raw, at),
            "the last character does not end a valid group",
        ),
        base64::DecodeError::InvalidLength(_) => problem(
            original_position(raw, symbols - 1),
            "the text ends with a lone character (it is cut short)",
        ),
        base64::DecodeError::InvalidPadding => {
            problem(original_position(raw, symbols - 1), "misplaced '=' padding")
        }
    })
}
