//! Encode/decode cost of a text send request and its frame (target: < 1 µs for a
//! send request), and of a 300-byte push compressed as gzip and as LZ4 (target:
//! LZ4 decode under 1 µs). Results go in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{
    SendParams, SplicedField, WebContext, im_frame, send_message_request,
};
use tiktok_dm_proto::ids::{ClientMessageId, ConversationId, ConversationShortId, DeviceId};
use tiktok_dm_proto::schema::{ExtendedEntry, Frame, Request};

fn bench(c: &mut Criterion) {
    let send = TextSend::new();
    encode_and_decode(c, &send);
    whole_send(c, &send);
    gzip_push(c);
    lz4_push(c);
}

/// The ids and context headers of the benchmarked text send.
struct TextSend {
    conversation: ConversationId,
    client_id: ClientMessageId,
    device: DeviceId,
    headers: Vec<ExtendedEntry>,
}

impl TextSend {
    /// A web client's send in a one-to-one conversation.
    fn new() -> Self {
        let device = DeviceId::parse("7669334412366218765").unwrap();
        let context = WebContext {
            device_id: device.clone(),
            region: "US".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/149.0.0.0 Safari/537.36".into(),
            language: "en-US".into(),
            tz_name: "UTC".into(),
            verify_fp: Some("verify_x".into()),
            ms_token: Some("token".into()),
        };
        Self {
            conversation: ConversationId::parse("0:1:7366359960223482885:7664958044560016398")
                .unwrap(),
            client_id: ClientMessageId::from_random_bytes([7; 16]),
            headers: context.headers(),
            device,
        }
    }

    /// The send request the client builds, with or without the headers in it.
    fn request(&self, headers: Vec<ExtendedEntry>) -> Request {
        send_message_request(SendParams {
            conversation_id: &self.conversation,
            conversation_short_id: ConversationShortId::new(7669414245201953037).unwrap(),
            inbox_type: 0,
            content: r#"{"aweType":0,"text":"hello from the benchmark"}"#,
            message_type: 7,
            client_message_id: &self.client_id,
            sequence_id: 10001,
            context_headers: headers,
            device_id: &self.device,
        })
    }
}

/// Encoding and decoding a send request and its frame, each on its own.
fn encode_and_decode(c: &mut Criterion, send: &TextSend) {
    let request = send.request(send.headers.clone());
    let bytes = request.encode_to_vec();
    let frame_bytes =
        im_frame(&bytes, 10001, 1_786_000_000_000, send.headers.clone()).encode_to_vec();

    c.bench_function("encode send request", |b| {
        b.iter(|| black_box(&request).encode_to_vec())
    });
    c.bench_function("decode send request", |b| {
        b.iter(|| Request::decode(black_box(&bytes)).unwrap())
    });
    c.bench_function("decode frame", |b| {
        b.iter(|| Frame::decode(black_box(&frame_bytes)).unwrap())
    });
    let frame = Frame::decode(&frame_bytes).unwrap();
    c.bench_function("encode frame", |b| {
        b.iter(|| black_box(&frame).encode_to_vec())
    });
}

/// A whole send as the client builds it: the request, then its frame, with
/// the headers cloned into both or spliced in encoded.
fn whole_send(c: &mut Criterion, send: &TextSend) {
    let headers = &send.headers;
    c.bench_function("build a send and its frame, headers cloned", |b| {
        b.iter(|| {
            let request = send.request(black_box(headers).clone()).encode_to_vec();
            im_frame(&request, 10001, 1, black_box(headers).clone()).encode_to_vec()
        })
    });
    let (in_request, in_frame) = (
        SplicedField::request_headers(headers),
        SplicedField::frame_headers(headers),
    );
    c.bench_function("build a send and its frame, headers spliced", |b| {
        b.iter(|| {
            let request = black_box(&in_request).encode_into(&send.request(Vec::new()));
            black_box(&in_frame).encode_into(&im_frame(&request, 10001, 1, Vec::new()))
        })
    });
}

/// A cmd-500 push body is a few hundred bytes; pushes are gzip on the wire.
fn gzip_push(c: &mut Criterion) {
    let push = vec![b'x'; 300];
    let zipped = tiktok_dm_proto::codec::gzip(&push);
    c.bench_function("gzip 300-byte push", |b| {
        b.iter(|| tiktok_dm_proto::codec::gzip(black_box(&push)))
    });
    c.bench_function("gunzip 300-byte push", |b| {
        b.iter(|| tiktok_dm_proto::codec::gunzip(black_box(&zipped)).unwrap())
    });
}

/// On the fpid-9 socket replies and pushes are one raw LZ4 block: a real
/// push Response of about 300 bytes (a text message echo), compressed.
fn lz4_push(c: &mut Criterion) {
    let push = echo_push();
    let block = tiktok_dm_proto::codec::lz4(&push);
    c.bench_function("lz4 decode 300-byte push", |b| {
        b.iter(|| tiktok_dm_proto::lz4::decompress_block(black_box(&block)).unwrap())
    });
    c.bench_function("lz4 encode 300-byte push", |b| {
        b.iter(|| tiktok_dm_proto::codec::lz4(black_box(&push)))
    });
}

/// A cmd-500 push `Response` with one text message, as the sandbox sends it.
fn echo_push() -> Vec<u8> {
    use tiktok_dm_proto::schema::{MessageBody, NewMessageNotify, Response, ResponseBody};
    let message = MessageBody {
        conversation_id: Some("0:1:7366359960223482885:7664958044560016398".into()),
        conversation_type: Some(1),
        server_message_id: Some(7_669_414_245_201_953_037),
        index_in_conversation: Some(1_786_000_000_000_123),
        conversation_short_id: Some(7_669_414_245_201_953_037),
        message_type: Some(7),
        sender: Some(7_366_359_960_223_482_885),
        content: Some(r#"{"aweType":0,"text":"hello from the benchmark, a short DM"}"#.into()),
        ext: vec![
            ExtendedEntry::new(
                "s:client_message_id",
                "5c822568-65d8-451b-a38a-a9e046268f5f",
            ),
            ExtendedEntry::new("s:mentioned_users", ""),
        ],
        create_time: Some(1_786_000_000_000),
        ..MessageBody::default()
    };
    let response = Response {
        cmd: Some(500),
        sequence_id: Some(0),
        status_code: Some(0),
        error_desc: Some("OK".into()),
        body: Some(ResponseBody {
            has_new_message_notify: vec![NewMessageNotify {
                conversation_id: message.conversation_id.clone(),
                conversation_type: Some(1),
                notify_type: Some(1),
                message: Some(message),
                ..NewMessageNotify::default()
            }],
            ..ResponseBody::default()
        }),
        log_id: Some("20261202200000ABCDEF0123456789ABCDEF".into()),
        ..Response::default()
    };
    response.encode_to_vec()
}

criterion_group!(benches, bench);
criterion_main!(benches);
