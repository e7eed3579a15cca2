//! Downlink payload encodings: `__lz4` (the fpid-9 socket), `gzip` and none all
//! read back to the same `Response`; anything else is refused by name.

use tiktok_dm_proto::codec::{frame_payload, frame_response, gzip, lz4};
use tiktok_dm_proto::schema::{Frame, Response};
use tiktok_dm_proto::wire::Blob;
use tiktok_dm_proto::{DecodeError, Message};

use crate::vectors::load;

fn frame(encoding: Option<&str>, payload: Vec<u8>) -> Frame {
    Frame {
        seqid: Some(0),
        logid: Some(1),
        service: Some(5),
        method: Some(1),
        payload_encoding: encoding.map(Into::into),
        payload_type: Some("pb".into()),
        payload: Some(Blob(payload)),
        ..Frame::default()
    }
}

/// The synthetic push's `Response`, re-encoded with each encoding.
#[test]
fn every_downlink_encoding_reads_back_to_the_same_response() {
    let pushed = Frame::decode(&load("tiktok_web_ws_inbound_dm_synthetic")).unwrap();
    let response = frame_response(&pushed).unwrap();
    let plain = response.encode_to_vec();
    let table: [(Option<&str>, Vec<u8>); 4] = [
        (None, plain.clone()),
        (Some(""), plain.clone()),
        (Some("gzip"), gzip(&plain)),
        (Some("__lz4"), lz4(&plain)),
    ];
    for (encoding, payload) in table {
        let f = Frame::decode(&frame(encoding, payload).encode_to_vec()).unwrap();
        assert_eq!(frame_payload(&f).unwrap(), plain, "{encoding:?}");
        assert_eq!(frame_response(&f).unwrap(), response, "{encoding:?}");
        let notify = &response.body.as_ref().unwrap().has_new_message_notify[0];
        let got = frame_response(&f).unwrap();
        let got_notify = &got.body.as_ref().unwrap().has_new_message_notify[0];
        assert_eq!(
            got_notify.message.as_ref().unwrap().content,
            notify.message.as_ref().unwrap().content,
            "{encoding:?}"
        );
    }
}

#[test]
fn a_corrupt_payload_is_an_error_naming_its_encoding() {
    type Expect = fn(&DecodeError) -> bool;
    let table: [(&str, Vec<u8>, Expect); 3] = [
        ("gzip", b"\x1f\x8bnot gzip".to_vec(), |e| {
            matches!(e, DecodeError::Gzip(_))
        }),
        ("__lz4", vec![0xF0, 0xFF, 0xFF, 0xFF], |e| {
            matches!(e, DecodeError::Lz4(_))
        }),
        (
            "br",
            b"whatever".to_vec(),
            |e| matches!(e, DecodeError::UnsupportedEncoding(n) if n == "br"),
        ),
    ];
    for (encoding, payload, expected) in table {
        let err = frame_payload(&frame(Some(encoding), payload)).unwrap_err();
        assert!(expected(&err), "{encoding}: {err}");
    }
}

#[test]
fn an_lz4_payload_of_a_large_response_inflates_whole() {
    let response = Response {
        cmd: Some(500),
        error_desc: Some("x".repeat(3 * 1024 * 1024).into()),
        ..Response::default()
    };
    let plain = response.encode_to_vec();
    let compressed = lz4(&plain);
    assert!(compressed.len() * 50 < plain.len());
    let got = frame_response(&frame(Some("__lz4"), compressed)).unwrap();
    assert_eq!(got, response);
}
