//! `tiktok-dm decode`: wire bytes to JSON, or back to bytes.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use tiktok_dm_client::proto::Message;
use tiktok_dm_client::proto::codec::frame_payload;
use tiktok_dm_client::proto::schema::{Frame, Request, Response};

use crate::args::{DecodeArgs, DecodeAs};

/// Base64 text (standard alphabet, whitespace ignored) when it decodes as such;
/// otherwise the raw bytes.
fn read_input(path: &str) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == "-" {
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("cannot read standard input")?;
    } else {
        raw = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    }
    let compact: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let looks_base64 = !compact.is_empty()
        && compact
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if looks_base64 {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) {
            return Ok(bytes);
        }
    }
    Ok(raw)
}

fn decoded<M: Message + serde::Serialize>(
    bytes: &[u8],
    what: &str,
) -> anyhow::Result<(serde_json::Value, Vec<u8>)> {
    let msg = M::decode(bytes).with_context(|| format!("the input is not a valid {what}"))?;
    Ok((serde_json::to_value(&msg)?, msg.encode_to_vec()))
}

/// A frame's payload, decoded: a downlink payload (compressed, as only the
/// server compresses) as a `Response`; an uncompressed one as the `Request`
/// the web client sends when it reads as one (it always names its SDK
/// version), else as a `Response` (an uncompressed reply).
fn payload_decoded(frame: &Frame, payload: &[u8]) -> Option<(&'static str, serde_json::Value)> {
    let compressed = !matches!(frame.payload_encoding.as_deref(), None | Some(""));
    if !compressed {
        if let Ok(request) = Request::decode(payload) {
            if request.sdk_version.is_some() || request.device_platform.is_some() {
                return Some(("Request", serde_json::to_value(request).ok()?));
            }
        }
    }
    let response = Response::decode(payload).ok()?;
    Some(("Response", serde_json::to_value(response).ok()?))
}

pub fn run(a: DecodeArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&a.input)?;
    let (json, reencoded) = match a.kind {
        DecodeAs::Request => decoded::<Request>(&bytes, "Request")?,
        DecodeAs::Response => decoded::<Response>(&bytes, "Response")?,
        DecodeAs::Frame => {
            let (mut json, reencoded) = decoded::<Frame>(&bytes, "Frame")?;
            let frame = Frame::decode(&bytes)?;
            if let Some(obj) = json.as_object_mut() {
                match frame_payload(&frame) {
                    Ok(payload) => {
                        if let Some((kind, inner)) = payload_decoded(&frame, &payload) {
                            obj.insert("payload_decoded_as".into(), kind.into());
                            obj.insert("payload_decoded".into(), inner);
                        }
                    }
                    Err(e) => {
                        obj.insert("payload_error".into(), e.to_string().into());
                    }
                }
            }
            (json, reencoded)
        }
    };
    let text = if a.reencode {
        base64::engine::general_purpose::STANDARD.encode(reencoded)
    } else {
        serde_json::to_string_pretty(&json)?
    };
    crate::output::print_line(text)?;
    Ok(ExitCode::SUCCESS)
}
