//! Every captured vector decodes and re-encodes to its exact bytes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{SplicedField, frame_payload, gzip};
use tiktok_dm_proto::schema::{Frame, Request, Response};

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors")
}

pub fn load(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(vectors_dir().join(format!("{name}.b64"))).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

fn top_level(name: &str) -> String {
    let md = std::fs::read_to_string(vectors_dir().join(format!("{name}.md"))).unwrap_or_default();
    md.lines()
        .find_map(|l| l.split("Top-level message:").nth(1))
        .map(|rest| rest.trim().trim_matches('`').to_owned())
        .unwrap_or_else(|| "Frame".to_owned())
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(bytes: &[u8], what: &str) -> M {
    let msg = M::decode(bytes).unwrap_or_else(|e| panic!("{what}: decode failed: {e}"));
    let again = msg.encode_to_vec();
    assert_eq!(
        again.len(),
        msg.encoded_len(),
        "{what}: encoded_len disagrees"
    );
    assert!(
        again == bytes,
        "{what}: re-encoding differs from the capture"
    );
    msg
}

/// The headers taken out and spliced back in give the same bytes.
fn check_splice<M: Message>(
    bytes: &[u8],
    what: &str,
    take: impl FnOnce(&mut M) -> Vec<tiktok_dm_proto::schema::ExtendedEntry>,
    field: impl FnOnce(&[tiktok_dm_proto::schema::ExtendedEntry]) -> SplicedField,
) -> usize {
    let mut msg = M::decode(bytes).unwrap();
    let headers = take(&mut msg);
    assert!(
        field(&headers).encode_into(&msg) == bytes,
        "{what}: splicing the headers back differs from the capture"
    );
    headers.len()
}

fn check_frame(bytes: &[u8], name: &str) {
    let frame: Frame = round_trip(bytes, name);
    check_splice::<Frame>(
        bytes,
        name,
        |f| std::mem::take(&mut f.headers),
        SplicedField::frame_headers,
    );
    let payload = frame_payload(&frame).unwrap_or_else(|e| panic!("{name}: payload: {e}"));
    match (
        frame.payload_encoding.as_deref(),
        frame.payload_type.as_deref(),
    ) {
        (_, Some("pb")) => {
            let request: Request = round_trip(&payload, &format!("{name} payload"));
            check_splice::<Request>(
                &payload,
                name,
                |r| std::mem::take(&mut r.headers),
                SplicedField::request_headers,
            );
            assert_eq!(
                request.sequence_id.map(|s| s as u64),
                frame.seqid,
                "{name}: seqid = sequence_id"
            );
        }
        (Some("gzip"), _) => {
            // Compare the decompressed content, then check our own gzip round trip.
            let response: Response = round_trip(&payload, &format!("{name} inflated payload"));
            let mut rezipped = frame.clone();
            rezipped.payload = Some(gzip(&response.encode_to_vec()).into());
            assert_eq!(
                frame_payload(&rezipped).unwrap(),
                payload,
                "{name}: gzip round trip"
            );
        }
        _ => {}
    }
}

#[test]
fn every_vector_in_the_folder_round_trips_byte_for_byte() {
    let mut checked = 0;
    let mut spliced = 0;
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".b64")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in &names {
        let bytes = load(name);
        match top_level(name).as_str() {
            "Request" => {
                round_trip::<Request>(&bytes, name);
                spliced += check_splice::<Request>(
                    &bytes,
                    name,
                    |r| std::mem::take(&mut r.headers),
                    SplicedField::request_headers,
                );
            }
            "Response" => drop(round_trip::<Response>(&bytes, name)),
            "TEXT" => assert_eq!(bytes, b"hi", "{name}: the only text frame is the heartbeat"),
            _ => check_frame(&bytes, name),
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "expected at least the 20 shipped vectors, found {checked}"
    );
    assert!(
        spliced >= 30,
        "the captured requests carry the context headers"
    );
}

#[test]
fn the_captured_send_request_decodes_to_the_documented_fields() {
    let request = Request::decode(&load("tiktok_web_send_text_request_http_2026")).unwrap();
    assert_eq!(request.cmd, Some(100));
    assert_eq!(request.sequence_id, Some(10033));
    assert_eq!(
        request.token.as_deref(),
        Some(""),
        "token is present even though empty"
    );
    let body = request.body.unwrap().send_message_body.unwrap();
    assert_eq!(
        body.content.as_deref(),
        Some(r#"{"aweType":0,"text":"probe6"}"#)
    );
    assert_eq!(body.ext[0].key_str(), "s:mentioned_users");
    assert_eq!(body.ext[0].value.as_deref(), Some(""));
    assert_eq!(body.message_type, Some(7));
    assert!(body.unknown_fields.is_empty());
}

#[test]
fn fields_no_schema_knows_are_kept_in_place() {
    let bytes = load("tiktok_web_init_response_cmd203");
    let response = Response::decode(&bytes).unwrap();
    let init = response
        .body
        .as_ref()
        .unwrap()
        .messages_per_user_init_v2_body
        .as_ref()
        .unwrap();
    assert_eq!(
        init.unknown_fields.0.len(),
        1,
        "body field 11 is not in any schema"
    );
    assert_eq!(init.unknown_fields.0[0].number, 11);
    assert_eq!(response.own_user_id, Some(8999999999999990001));
}

#[test]
fn the_synthetic_push_carries_a_new_message_notify() {
    let frame = Frame::decode(&load("tiktok_web_ws_inbound_dm_synthetic")).unwrap();
    let response = tiktok_dm_proto::codec::frame_response(&frame).unwrap();
    assert_eq!(response.cmd, Some(500));
    let notify = &response.body.unwrap().has_new_message_notify[0];
    let message = notify.message.as_ref().unwrap();
    assert_eq!(message.sender, Some(9999990002));
    assert_eq!(
        message.content.as_deref(),
        Some(r#"{"aweType":0,"text":"is the bridge picking this up?"}"#)
    );
}

#[test]
fn a_repeated_field_that_arrives_packed_is_read_and_written_back_packed() {
    use tiktok_dm_proto::schema::CreateConversationV2RequestBody;
    // conversation_type 1, participants [7, 300] packed (proto3 style).
    let packed = [0x08, 0x01, 0x12, 0x03, 0x07, 0xac, 0x02];
    let body = CreateConversationV2RequestBody::decode(&packed).unwrap();
    assert_eq!(body.participants, vec![7, 300]);
    assert_eq!(body.encode_to_vec(), packed);
    assert_eq!(body.encoded_len(), packed.len());
    // The same values unpacked (as the Douyin capture has them) stay unpacked.
    let unpacked = [0x08, 0x01, 0x10, 0x07, 0x10, 0xac, 0x02];
    let body = CreateConversationV2RequestBody::decode(&unpacked).unwrap();
    assert_eq!(body.participants, vec![7, 300]);
    assert_eq!(body.encode_to_vec(), unpacked);
    // An empty packed run is written back too (found by the fuzzer: it was
    // dropped, so decoding what was written gave a different message).
    let empty = [0x08, 0x01, 0x12, 0x00];
    let body = CreateConversationV2RequestBody::decode(&empty).unwrap();
    assert!(body.participants.is_empty());
    assert_eq!(body.encode_to_vec(), empty);
    assert_eq!(body.encoded_len(), empty.len());
    assert_eq!(
        CreateConversationV2RequestBody::decode(&body.encode_to_vec()).unwrap(),
        body
    );
}
