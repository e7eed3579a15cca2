//! What users hand the client: sessions (cookie headers, JSON exports, bare
//! sessionids), images as bytes, base64 or data URIs, ids and text. Nothing may
//! panic; an accepted image must probe as what it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiktok_dm_client::image::Image;
use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::{Credentials, Target};

fuzz_target!(|bytes: &[u8]| {
    let limit = 1 << 20;
    let _ = Image::from_bytes(bytes.to_vec(), limit);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Credentials::parse(text);
        let _ = Image::from_text(text, limit);
        let _ = MessageText::parse(text);
        if let Some((a, b)) = text.split_at_checked(text.len() / 2) {
            let _ = Target::parse(a, b);
        }
    }
});
