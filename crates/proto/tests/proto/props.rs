//! Property tests: encode/decode round trips, and the decoder never panics.

use proptest::prelude::*;
use tiktok_dm_proto::Message;
use tiktok_dm_proto::schema::{
    ExtendedEntry, Frame, Request, RequestBody, Response, SendMessageRequestBody,
};

fn entry() -> impl Strategy<Value = ExtendedEntry> {
    (any::<String>(), any::<String>()).prop_map(|(k, v)| ExtendedEntry::new(k, v))
}

fn send_body() -> impl Strategy<Value = SendMessageRequestBody> {
    (
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<String>()),
        proptest::collection::vec(entry(), 0..4),
        proptest::collection::vec(any::<i64>(), 0..4),
    )
        .prop_map(
            |(id, ty, short, content, ext, mentioned)| SendMessageRequestBody {
                conversation_id: id.map(Into::into),
                conversation_type: ty,
                conversation_short_id: short,
                content: content.map(Into::into),
                ext,
                mentioned_users: mentioned,
                ..SendMessageRequestBody::default()
            },
        )
}

proptest! {
    #[test]
    fn frames_round_trip(seqid in proptest::option::of(any::<u64>()), service in proptest::option::of(any::<i32>()),
                         headers in proptest::collection::vec(entry(), 0..5),
                         payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let f = Frame { seqid, service, headers, payload: payload.map(Into::into), ..Frame::default() };
        let bytes = f.encode_to_vec();
        prop_assert_eq!(bytes.len(), f.encoded_len());
        prop_assert_eq!(Frame::decode(&bytes).unwrap(), f);
    }

    #[test]
    fn send_requests_round_trip(body in send_body(), seq in any::<i64>(), token in proptest::option::of(any::<String>())) {
        let r = Request {
            cmd: Some(100),
            sequence_id: Some(seq),
            token: token.map(Into::into),
            body: Some(RequestBody { send_message_body: Some(body), ..RequestBody::default() }),
            ..Request::default()
        };
        let bytes = r.encode_to_vec();
        prop_assert_eq!(Request::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_whatever_decodes_re_encodes_identically(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(f) = Frame::decode(&bytes) {
            prop_assert_eq!(Frame::decode(&f.encode_to_vec()).unwrap(), f);
        }
        if let Ok(r) = Response::decode(&bytes) {
            let _ = tiktok_dm_proto::events::events_from_response(&r, None);
            prop_assert_eq!(Response::decode(&r.encode_to_vec()).unwrap(), r);
        }
    }

    #[test]
    fn any_push_content_and_ext_give_events_or_none_without_panicking(
        cmd in prop_oneof![Just(500), Just(501), Just(510), Just(705)],
        content in ".{0,64}",
        key in prop_oneof![Just("s:property_modify"), Just("s:recall_uid"), Just("s:server_message_id"), Just("s:client_message_id")],
        value in ".{0,64}",
        sender in any::<Option<i64>>(),
    ) {
        use tiktok_dm_proto::schema::{ExtendedEntry, MessageBody, NewMessageNotify, PropertyUpdateNotify, ResponseBody};
        let message = MessageBody {
            conversation_id: Some("0:1:1:2".into()),
            server_message_id: Some(1),
            sender,
            content: Some(content.as_str().into()),
            ext: vec![ExtendedEntry::new(key, value.as_str())],
            ..MessageBody::default()
        };
        let notify = vec![NewMessageNotify { message: Some(message.clone()), ..NewMessageNotify::default() }];
        let body = ResponseBody {
            has_new_message_notify: notify.clone(),
            read_notify: notify.clone(),
            typing_notify: notify,
            property_update_notify: Some(PropertyUpdateNotify {
                conversation_id: Some("0:1:1:2".into()),
                ext: message.ext.clone(),
                ..PropertyUpdateNotify::default()
            }),
            ..ResponseBody::default()
        };
        let response = Response { cmd: Some(cmd), body: Some(body), ..Response::default() };
        for event in tiktok_dm_proto::events::events_from_response(&response, None) {
            let json = serde_json::to_string(&event).unwrap();
            let back: tiktok_dm_proto::events::Event = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, event);
        }
    }
}
