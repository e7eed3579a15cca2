//! Events read from pushes and listed messages.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::events::{
    Direction, Event, ReactionOp, ReceivedKind, events_from_response, from_message,
};
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{
    ExtendedEntry, Frame, MediaInfo, MediaVariant, MessageBody, NewMessageNotify,
    PropertyUpdateNotify, Response, ResponseBody,
};

use crate::vectors::load;

const ALICE: i64 = 7_000_000_000_000_000_001;
const BOB: i64 = 7_000_000_000_000_000_002;
const CONV: &str = "0:1:7000000000000000001:7000000000000000002";

fn alice() -> Option<Uid> {
    Some(Uid::new(ALICE).unwrap())
}

fn body(sender: i64, id: i64, content: &str) -> MessageBody {
    MessageBody {
        conversation_id: Some(CONV.into()),
        conversation_type: Some(1),
        server_message_id: Some(id),
        index_in_conversation: Some(1_700_000_000_000_123),
        conversation_short_id: Some(7_200_000_000_000_000_001),
        message_type: Some(7),
        sender: Some(sender),
        content: Some(content.into()),
        ext: vec![ExtendedEntry::new(
            "s:client_message_id",
            format!("cm-{id}"),
        )],
        ..MessageBody::default()
    }
}

fn push(cmd: i32, bodies: Vec<MessageBody>) -> Response {
    let notifies: Vec<NewMessageNotify> = bodies
        .into_iter()
        .map(|m| NewMessageNotify {
            conversation_id: m.conversation_id.clone(),
            message: Some(m),
            ..NewMessageNotify::default()
        })
        .collect();
    let mut body = ResponseBody::default();
    match cmd {
        500 => body.has_new_message_notify = notifies,
        501 => body.read_notify = notifies,
        510 => body.typing_notify = notifies,
        _ => unreachable!(),
    }
    Response {
        cmd: Some(cmd),
        body: Some(body),
        ..Response::default()
    }
}

#[test]
fn a_text_from_the_peer_is_an_inbound_message_with_string_ids() {
    let events = events_from_response(
        &push(500, vec![body(BOB, 41, r#"{"aweType":0,"text":"hi"}"#)]),
        alice(),
    );
    let [Event::MessageReceived(m)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, ReceivedKind::Text);
    assert_eq!(m.text.as_deref(), Some("hi"));
    assert_eq!(m.client_message_id.as_deref(), Some("cm-41"));
    assert_eq!(m.created_at_ms, 1_700_000_000_000);
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["type"], "message.received");
    assert_eq!(json["sender_uid"], BOB.to_string());
    assert_eq!(json["server_message_id"], "41");
    assert_eq!(json["conversation_short_id"], "7200000000000000001");
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, events[0]);
}

#[test]
fn our_own_echo_is_outbound_and_every_repeated_entry_is_read() {
    let events = events_from_response(
        &push(
            500,
            vec![
                body(ALICE, 1, r#"{"text":"a"}"#),
                body(BOB, 2, r#"{"text":"b"}"#),
            ],
        ),
        alice(),
    );
    let directions: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::MessageReceived(m) => m.direction,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(directions, [Direction::Outbound, Direction::Inbound]);
}

#[test]
fn the_synthetic_capture_reads_as_a_text_message() {
    let frame = Frame::decode(&load("tiktok_web_ws_inbound_dm_synthetic")).unwrap();
    let response = tiktok_dm_proto::codec::frame_response(&frame).unwrap();
    let events = events_from_response(&response, None);
    let [Event::MessageReceived(m)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(m.sender_uid, 9999990002);
    assert_eq!(m.text.as_deref(), Some("is the bridge picking this up?"));
}

#[test]
fn a_private_image_carries_its_path_urls_and_key() {
    let mut m = body(BOB, 5, "");
    m.message_type = Some(1802);
    m.scene = Some("private_image".into());
    m.media_info_list = vec![MediaInfo {
        path: Some("tos-alisg-i-0000/abc".into()),
        decrypt_key: Some("00".repeat(32).into()),
        variants: vec![MediaVariant {
            urls: vec!["https://p16.example/abc~tplv.image".into()],
            width: Some(640),
            height: Some(480),
            ..MediaVariant::default()
        }],
        ..MediaInfo::default()
    }];
    let Some(Event::MessageReceived(r)) = from_message(&m, CONV, alice()) else {
        panic!()
    };
    let image = r.image.unwrap();
    assert_eq!(r.kind, ReceivedKind::Image);
    assert_eq!(
        (image.path.as_str(), image.width, image.height),
        ("tos-alisg-i-0000/abc", Some(640), Some(480))
    );
    assert_eq!(image.urls, ["https://p16.example/abc~tplv.image"]);
}

#[test]
fn recalls_deletes_and_read_commands_are_told_apart() {
    let mut recall = body(BOB, 9, "");
    recall.ext = vec![
        ExtendedEntry::new("s:recall_uid", BOB.to_string()),
        ExtendedEntry::new("s:server_message_id", "41"),
    ];
    let hide = body(
        ALICE,
        10,
        r#"{"command_type":2,"conversation_id":"x","message_id":42}"#,
    );
    let read = body(
        BOB,
        11,
        r#"{"command_type":1,"read_index":1700000000000999}"#,
    );
    let other = body(BOB, 12, r#"{"command_type":7}"#);
    match from_message(&recall, CONV, alice()) {
        Some(Event::MessageDeleted(d)) => {
            assert_eq!(
                (d.server_message_id, d.by_uid, d.only_for_me),
                (41, BOB, false)
            )
        }
        e => panic!("{e:?}"),
    }
    match from_message(&hide, CONV, alice()) {
        Some(Event::MessageDeleted(d)) => {
            assert_eq!((d.server_message_id, d.only_for_me), (42, true))
        }
        e => panic!("{e:?}"),
    }
    match from_message(&read, CONV, alice()) {
        Some(Event::MessageRead(r)) => {
            assert_eq!(
                (r.reader_uid, r.read_index),
                (BOB, Some(1_700_000_000_000_999))
            )
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(from_message(&other, CONV, alice()), None);
}

#[test]
fn reactions_come_from_a_705_push_or_a_500_with_property_modify() {
    let modify = r#"{"UserId":7000000000000000002,"ServerMessageId":41,"Modifys":[{"Op":0,"Key":"e:❤️"},{"Op":1,"Key":"e:😂"}]}"#;
    let update = Response {
        cmd: Some(705),
        body: Some(ResponseBody {
            property_update_notify: Some(PropertyUpdateNotify {
                conversation_id: Some(CONV.into()),
                ext: vec![ExtendedEntry::new("s:property_modify", modify)],
                ..PropertyUpdateNotify::default()
            }),
            ..ResponseBody::default()
        }),
        ..Response::default()
    };
    let events = events_from_response(&update, alice());
    let [Event::Reaction(r)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((r.server_message_id, r.uid), (41, BOB));
    assert_eq!(r.changes[0].op, ReactionOp::Add);
    assert_eq!(r.changes[0].emoji, "❤️");
    assert_eq!(r.changes[1].op, ReactionOp::Remove);
    // The same reaction riding on a 500 push.
    let mut m = body(BOB, 50, "");
    m.ext.push(ExtendedEntry::new("s:property_modify", modify));
    assert!(
        matches!(from_message(&m, CONV, alice()), Some(Event::Reaction(r)) if r.event_message_id == Some(50))
    );
}

#[test]
fn typing_and_read_pushes_are_read() {
    let typing = events_from_response(&push(510, vec![body(BOB, 0, "")]), alice());
    assert!(
        matches!(typing.as_slice(), [Event::Typing(t)] if t.uid == BOB && t.conversation_id == CONV)
    );
    let read = events_from_response(&push(501, vec![body(BOB, 0, "")]), alice());
    assert!(matches!(read.as_slice(), [Event::MessageRead(r)] if r.reader_uid == BOB));
}

#[test]
fn bodies_missing_what_an_event_needs_give_no_event() {
    let mut no_sender = body(BOB, 1, r#"{"text":"x"}"#);
    no_sender.sender = None;
    let mut no_id = body(BOB, 1, r#"{"text":"x"}"#);
    no_id.server_message_id = None;
    let bad_modify = {
        let mut m = body(BOB, 1, "");
        m.ext
            .push(ExtendedEntry::new("s:property_modify", "{not json"));
        m
    };
    for m in [no_sender, no_id, bad_modify] {
        assert_eq!(from_message(&m, CONV, alice()), None);
    }
    assert!(events_from_response(&Response::default(), alice()).is_empty());
}
