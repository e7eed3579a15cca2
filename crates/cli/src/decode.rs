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

pub fn run(a: DecodeArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&a.input)?;
    let (json, reencoded) = match a.kind {
        DecodeAs::Request => decoded::<Request>(&bytes, "Request")?,
        DecodeAs::Response => decoded::<Response>(&bytes, "Response")?,
        DecodeAs::Frame => {
            let (mut json, reencoded) = decoded::<Frame>(&bytes, "Frame")?;
            // Show what the payload holds too: a Request uplink, a Response downlink.
            let frame = Frame::decode(&bytes)?;
            let payload = frame_payload(&frame);
            let inner = match (&payload, frame.payload_type.as_deref()) {
                (Ok(p), Some("pb")) => Request::decode(p).ok().map(serde_json::to_value),
                (Ok(p), _) if frame.payload_encoding.as_deref() == Some("gzip") => {
                    Response::decode(p).ok().map(serde_json::to_value)
                }
                _ => None,
            };
            if let (Some(Ok(inner)), Some(obj)) = (inner, json.as_object_mut()) {
                obj.insert("payload_decoded".into(), inner);
            }
            (json, reencoded)
        }
    };
    if a.reencode {
        println!(
            "{}",
            base64::engine::general_purpose::STANDARD.encode(reencoded)
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(ExitCode::SUCCESS)
}
