//! The `private_image` (1802) send, checked field number by field number
//! against PROTOCOL.md 10.3 with a raw protobuf walker of its own (so a
//! schema mistake cannot make the builder and the check agree).

use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{
    PrivateImage, SendParams, media_upload_config_request, private_image_request,
};
use tiktok_dm_proto::ids::{ClientMessageId, ConversationId, ConversationShortId, DeviceId};

#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// Every top-level field of `b`, in wire order.
fn fields(b: &[u8]) -> Vec<(u64, Raw)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at);
        let value = match key & 7 {
            0 => Raw::Varint(varint(b, &mut at)),
            2 => {
                let len = varint(b, &mut at) as usize;
                at += len;
                Raw::Bytes(b[at - len..at].to_vec())
            }
            other => panic!("wire type {other}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn numbers(b: &[u8]) -> Vec<u64> {
    fields(b).into_iter().map(|(n, _)| n).collect()
}

fn all(b: &[u8], n: u64) -> Vec<Raw> {
    fields(b)
        .into_iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, v)| v)
        .collect()
}

fn bytes(b: &[u8], n: u64) -> Vec<u8> {
    match all(b, n).as_slice() {
        [Raw::Bytes(v)] => v.clone(),
        other => panic!("field {n}: {other:?}"),
    }
}

fn text(b: &[u8], n: u64) -> String {
    String::from_utf8(bytes(b, n)).unwrap()
}

fn int(b: &[u8], n: u64) -> u64 {
    match all(b, n).as_slice() {
        [Raw::Varint(v)] => *v,
        other => panic!("field {n}: {other:?}"),
    }
}

fn kv(b: &[u8]) -> (String, String) {
    (text(b, 1), text(b, 2))
}

const PATH: &str = "tos-maliva-i-o3syd03w52-us/4a3b9d8e0f1c4c2d9e7f";
const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn built() -> Vec<u8> {
    let conversation = ConversationId::parse("0:1:111:222").unwrap();
    let id = ClientMessageId::parse("5c822568-65d8-451b-a38a-a9e046268f5f").unwrap();
    let device = DeviceId::parse("7669334412366218765").unwrap();
    let image = PrivateImage {
        path: PATH.into(),
        decrypt_key: KEY.into(),
        width: 640,
        height: 480,
        size: 123_456,
        file_name: "image.png".into(),
    };
    let params = SendParams {
        conversation_id: &conversation,
        conversation_short_id: ConversationShortId::parse("7669414245201953037").unwrap(),
        inbox_type: 0,
        content: "ignored",
        message_type: 7,
        client_message_id: &id,
        sequence_id: 10009,
        context_headers: Vec::new(),
        device_id: &device,
    };
    private_image_request(params, &image).encode_to_vec()
}

#[test]
fn the_private_image_send_carries_every_field_of_section_10_3() {
    let request = built();
    assert_eq!(int(&request, 1), 100);
    assert_eq!(int(&request, 2), 10009);
    let body = bytes(&bytes(&request, 8), 100);
    assert_eq!(numbers(&body), [1, 2, 3, 4, 5, 5, 6, 7, 8, 13, 14, 17]);
    assert_eq!(text(&body, 1), "0:1:111:222");
    assert_eq!(int(&body, 2), 1);
    assert_eq!(int(&body, 3), 7669414245201953037);
    assert_eq!(bytes(&body, 4), b"", "content is present and empty");
    assert_eq!(int(&body, 6), 1802);
    assert_eq!(text(&body, 7), "deprecated");
    assert_eq!(text(&body, 8), "5c822568-65d8-451b-a38a-a9e046268f5f");
    assert_eq!(text(&body, 14), "private_image");

    // 13 content_pb = {4 private_image}
    let content_pb = bytes(&body, 13);
    assert_eq!(numbers(&content_pb), [4]);
    let image = bytes(&content_pb, 4);
    assert_eq!(numbers(&image), [1, 3, 200]);
    let asset = bytes(&image, 1);
    assert_eq!(numbers(&asset), [1, 5, 6, 7]);
    assert_eq!(text(&asset, 1), PATH);
    let size = bytes(&asset, 5);
    assert_eq!(numbers(&size), [1, 2]);
    assert_eq!((int(&size, 1), int(&size, 2)), (640, 480));
    assert_eq!(text(&asset, 6), KEY);
    assert_eq!(int(&asset, 7), 0);
    let texts = bytes(&image, 3);
    assert_eq!(numbers(&texts), [1, 2, 3]);
    let preview = |n| text(&bytes(&texts, n), 1);
    assert_eq!(
        (preview(1), preview(2), preview(3)),
        ("You sent a 📷".into(), "sent a 📷".into(), "[Photo]".into())
    );
    let metadata = bytes(&image, 200);
    assert_eq!(numbers(&metadata), [1]);
    let entry = bytes(&metadata, 1);
    assert_eq!(numbers(&entry), [1, 2, 2, 2, 2, 2]);
    assert_eq!(text(&entry, 1), PATH);
    let props: Vec<(String, String)> = all(&entry, 2)
        .into_iter()
        .map(|r| match r {
            Raw::Bytes(b) => kv(&b),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [
        ("image_width", "640"),
        ("image_height", "480"),
        ("decrypt_key", KEY),
        ("quote_preview", "dm_cam_preview_photo"),
        ("sender_preview", "sender_preview"),
    ];
    assert_eq!(props, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));

    // 17 send_media_list = {1 1, 2 path, 3 key, 10 {1 w, 2 h, 4 size, 5 name}}
    let media = bytes(&body, 17);
    assert_eq!(numbers(&media), [1, 2, 3, 10]);
    assert_eq!(int(&media, 1), 1);
    assert_eq!(text(&media, 2), PATH);
    assert_eq!(text(&media, 3), KEY);
    let info = bytes(&media, 10);
    assert_eq!(numbers(&info), [1, 2, 4, 5]);
    assert_eq!(
        (int(&info, 1), int(&info, 2), int(&info, 4)),
        (640, 480, 123_456)
    );
    assert_eq!(text(&info, 5), "image.png");
}

#[test]
fn the_upload_config_request_is_cmd_2059_with_an_empty_string_body() {
    let device = DeviceId::parse("7669334412366218765").unwrap();
    let request = media_upload_config_request(10007, &device).encode_to_vec();
    assert_eq!(int(&request, 1), 2059);
    assert_eq!(bytes(&bytes(&request, 8), 2059), b"");
    assert_eq!(numbers(&bytes(&request, 8)), [2059]);
}
