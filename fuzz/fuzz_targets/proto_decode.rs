//! What arrives from TikTok (or anything posing as it): frames, IM responses and
//! requests, gzip payloads, message content. Nothing may panic, and whatever
//! decodes must re-encode to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{frame_payload, frame_response, gunzip};
use tiktok_dm_proto::content::parse_content;
use tiktok_dm_proto::events::events_from_response;
use tiktok_dm_proto::image::probe;
use tiktok_dm_proto::schema::{Frame, Request, Response};
use tiktok_dm_proto::status::classify_send_response;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(frame) = Frame::decode(bytes) {
        assert_eq!(
            Frame::decode(&frame.encode_to_vec()).ok(),
            Some(frame.clone())
        );
        let _ = frame_payload(&frame);
        if let Ok(response) = frame_response(&frame) {
            let _ = classify_send_response(&response);
            let _ = events_from_response(&response, None);
        }
    }
    if let Ok(response) = Response::decode(bytes) {
        assert_eq!(
            Response::decode(&response.encode_to_vec()).ok(),
            Some(response.clone())
        );
        let _ = classify_send_response(&response);
        let _ = events_from_response(&response, None);
    }
    if let Ok(request) = Request::decode(bytes) {
        assert_eq!(
            Request::decode(&request.encode_to_vec()).ok(),
            Some(request)
        );
    }
    let _ = gunzip(bytes);
    let _ = probe(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_content(text);
    }
});
