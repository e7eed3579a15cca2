//! `POST /_sandbox/inbound`: a seeded account sends into a conversation as
//! if from another device (text, image, typing, read, reaction), and the
//! `drop_pushes` fault that withholds pushes while the messages are stored.
//! Pushes are read as a receiving client reads them, with
//! `tiktok_dm_proto::events`.

use base64::Engine as _;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::{frame_response, im_request};
use tiktok_dm_proto::events::{Direction, Event, ReceivedKind, events_from_response};
use tiktok_dm_proto::schema::{MessagesPerUserInitV2RequestBody, RequestBody, Response};
use tiktok_dm_sandbox::{Account, Transport};
use tiktok_dm_test_support::{TestSandbox, noise_png, spawn_sandbox};

use crate::history::history;
use crate::upload::decrypt;
use crate::websocket::{Ws, next_binary, open};
use crate::{alice, http, post_route};

fn account(sandbox: &TestSandbox, name: &str) -> Account {
    sandbox.handle.account(name).unwrap().clone()
}

/// The seed's conversation `index` (0: alice and bob; 1: alice and carol, a
/// message request).
fn conversation(sandbox: &TestSandbox, index: usize) -> String {
    sandbox.handle.seed().conversations[index]
        .conversation_id
        .to_string()
}

/// POSTs a raw body to `/_sandbox/inbound`; returns the status and the JSON.
async fn post_raw(sandbox: &TestSandbox, body: String) -> (u16, serde_json::Value) {
    let response = http()
        .post(format!("{}/_sandbox/inbound", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn post(sandbox: &TestSandbox, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_raw(sandbox, body.to_string()).await
}

/// Bob says `text` to alice; returns the server message id the sandbox gave.
async fn bob_says(sandbox: &TestSandbox, text: &str) -> i64 {
    let body = serde_json::json!({
        "from": "bob",
        "conversation_id": conversation(sandbox, 0),
        "text": text,
    });
    let (status, answer) = post(sandbox, body).await;
    assert_eq!(status, 201, "{answer}");
    answer["messages"][0]["server_message_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The next push on `ws`, as its `Response` and the frame's encoding.
async fn next_push(ws: &mut Ws) -> (Response, Option<String>) {
    let frame = next_binary(ws).await;
    assert_eq!(frame.service, Some(cmd::SERVICE_BSYNC_PUSH));
    let encoding = frame.payload_encoding.as_deref().map(str::to_owned);
    (frame_response(&frame).unwrap(), encoding)
}

/// The one event the next push on `ws` carries, as `own` reads it.
async fn next_event(ws: &mut Ws, own: &Account) -> (i32, Event) {
    let (response, _) = next_push(ws).await;
    let mut events = events_from_response(&response, Some(own.uid));
    assert_eq!(events.len(), 1, "{events:?}");
    (response.cmd.unwrap(), events.remove(0))
}

fn received(event: Event) -> tiktok_dm_proto::events::ReceivedMessage {
    match event {
        Event::MessageReceived(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn an_inbound_text_is_pushed_to_both_participants_as_a_message_from_the_sender() {
    let sandbox = spawn_sandbox().await;
    let (a, bob) = (alice(&sandbox), account(&sandbox, "bob"));
    let mut alice_ws = open(&sandbox, &a).await;
    let mut bob_ws = open(&sandbox, &bob).await;
    let body = serde_json::json!({
        "from": "bob", "conversation_id": conversation(&sandbox, 0), "text": "hello",
    });
    let (status, answer) = post(&sandbox, body).await;
    assert_eq!(status, 201, "{answer}");
    let [posted] = answer["messages"].as_array().unwrap().as_slice() else {
        panic!("one message expected: {answer}");
    };
    assert_eq!(posted["kind"], "text");
    let server_id: i64 = posted["server_message_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client_id = posted["client_message_id"].as_str().unwrap();

    let (response, encoding) = next_push(&mut alice_ws).await;
    assert_eq!(
        (response.cmd, encoding.as_deref()),
        (Some(500), Some("__lz4"))
    );
    let events = events_from_response(&response, Some(a.uid));
    let [Event::MessageReceived(m)] = events.as_slice() else {
        panic!("one message expected: {events:?}");
    };
    assert_eq!(m.sender_uid, bob.uid.get());
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, ReceivedKind::Text);
    assert_eq!(m.text.as_deref(), Some("hello"));
    assert_eq!(m.server_message_id, server_id);
    assert_eq!(m.client_message_id.as_deref(), Some(client_id));
    assert_eq!(
        m.conversation_short_id,
        Some(
            sandbox.handle.seed().conversations[0]
                .conversation_short_id
                .get()
        )
    );
    // The sender's own sockets get the echo, as for a send.
    let echo = received(next_event(&mut bob_ws, &bob).await.1);
    assert_eq!(
        (echo.server_message_id, echo.direction),
        (server_id, Direction::Outbound)
    );

    let stored = sandbox.handle.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].server_message_id, server_id);
    assert_eq!(stored[0].sender_uid, bob.uid.get());
    assert_eq!(stored[0].transport, Transport::Inbound);
    assert_eq!(stored[0].content["text"], "hello");
    let page = history(&sandbox, &a, 0, 10).await;
    assert_eq!(page.messages[0].server_message_id, Some(server_id));
}

#[tokio::test]
async fn an_inbound_image_comes_before_its_caption_and_its_blob_opens_with_the_pushed_key() {
    let sandbox = spawn_sandbox().await;
    let (a, carol) = (alice(&sandbox), account(&sandbox, "carol"));
    let mut alice_ws = open(&sandbox, &a).await;
    let png = noise_png(24, 16, 7);
    let body = serde_json::json!({
        "from": "bob",
        "conversation_id": conversation(&sandbox, 0),
        "text": "look",
        "image": base64::engine::general_purpose::STANDARD.encode(&png),
    });
    let (status, answer) = post(&sandbox, body).await;
    assert_eq!(status, 201, "{answer}");
    let kinds: Vec<&str> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["image", "text"]);

    let (command, first) = next_event(&mut alice_ws, &a).await;
    assert_eq!(command, 500);
    let first = received(first);
    assert_eq!(
        (first.kind, first.message_type),
        (ReceivedKind::Image, 1802)
    );
    let image = first.image.unwrap();
    assert_eq!((image.width, image.height), (Some(24), Some(16)));
    assert_eq!(image.urls.len(), 1);
    let url = &image.urls[0];
    assert_eq!(
        url,
        &format!("{}/im/media/{}", sandbox.base_url(), image.path)
    );
    let fetch = |cookie: Option<String>| {
        let mut request = http().get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let fetched = fetch(Some(format!("ttwid=x; sessionid={}", a.session)))
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let blob = fetched.bytes().await.unwrap();
    assert_eq!(decrypt(&image.decrypt_key, &blob).unwrap(), png);
    assert_eq!(sandbox.handle.object(&image.path).unwrap(), png);
    assert_eq!(fetch(None).await.unwrap().status(), 401);
    let stranger = fetch(Some(format!("sessionid={}", carol.session)));
    assert_eq!(stranger.await.unwrap().status(), 403);

    let second = received(next_event(&mut alice_ws, &a).await.1);
    assert_eq!(second.text.as_deref(), Some("look"));
    assert!(second.index_in_conversation > first.index_in_conversation);
    let stored = sandbox.handle.messages();
    assert_eq!(stored[0].image.as_ref().unwrap().path, image.path);
    assert_eq!(stored[0].content, serde_json::Value::Null);
}

#[tokio::test]
async fn typing_and_read_pushes_reach_only_the_other_participant() {
    let sandbox = spawn_sandbox().await;
    let (a, bob) = (alice(&sandbox), account(&sandbox, "bob"));
    let id = conversation(&sandbox, 0);
    let mut alice_ws = open(&sandbox, &a).await;
    let mut bob_ws = open(&sandbox, &bob).await;
    bob_says(&sandbox, "first").await;
    let newest = received(next_event(&mut alice_ws, &a).await.1);
    next_event(&mut bob_ws, &bob).await;

    let typing = serde_json::json!({"from": "bob", "conversation_id": id, "typing": true});
    assert_eq!(post(&sandbox, typing).await, (202, serde_json::json!({})));
    let read = serde_json::json!({"from": "bob", "conversation_id": id, "read": true});
    assert_eq!(post(&sandbox, read).await, (202, serde_json::json!({})));

    let (command, event) = next_event(&mut alice_ws, &a).await;
    assert_eq!(command, 510);
    let Event::Typing(typing) = event else {
        panic!("expected typing, got {event:?}");
    };
    assert_eq!(
        (typing.uid, typing.conversation_id.as_str()),
        (bob.uid.get(), id.as_str())
    );
    let (command, event) = next_event(&mut alice_ws, &a).await;
    assert_eq!(command, 501);
    let Event::MessageRead(read) = event else {
        panic!("expected a read receipt, got {event:?}");
    };
    assert_eq!(read.reader_uid, bob.uid.get());
    assert_eq!(read.read_index, newest.index_in_conversation);
    assert_eq!(read.direction, Direction::Inbound);

    // Bob's socket got neither: the next thing it receives is the next message.
    let next = bob_says(&sandbox, "second").await;
    let (command, event) = next_event(&mut bob_ws, &bob).await;
    assert_eq!((command, received(event).server_message_id), (500, next));
}

#[tokio::test]
async fn a_reaction_is_pushed_as_a_property_update_to_both_participants() {
    let sandbox = spawn_sandbox().await;
    let (a, bob) = (alice(&sandbox), account(&sandbox, "bob"));
    let mut alice_ws = open(&sandbox, &a).await;
    let mut bob_ws = open(&sandbox, &bob).await;
    let target = bob_says(&sandbox, "react to me").await;
    next_event(&mut alice_ws, &a).await;
    next_event(&mut bob_ws, &bob).await;
    let body = serde_json::json!({
        "from": "alice",
        "conversation_id": conversation(&sandbox, 0),
        "reaction": {"server_message_id": target.to_string(), "emoji": "❤️"},
    });
    assert_eq!(post(&sandbox, body).await.0, 202);
    for (ws, own) in [(&mut alice_ws, &a), (&mut bob_ws, &bob)] {
        let (command, event) = next_event(ws, own).await;
        assert_eq!(command, 705);
        let Event::Reaction(reaction) = event else {
            panic!("expected a reaction, got {event:?}");
        };
        assert_eq!(reaction.server_message_id, target);
        assert_eq!(reaction.uid, a.uid.get());
        assert_eq!(reaction.changes[0].emoji, "❤️");
    }
}

/// cmd 203 as `account` asks it, over HTTP.
async fn inbox(
    sandbox: &TestSandbox,
    account: &Account,
) -> tiktok_dm_proto::schema::MessagesPerUserInitV2ResponseBody {
    let body = RequestBody {
        messages_per_user_init_v2_body: Some(MessagesPerUserInitV2RequestBody {
            cursor: Some(0),
            ..MessagesPerUserInitV2RequestBody::default()
        }),
        ..RequestBody::default()
    };
    let request = im_request(
        cmd::GET_MESSAGES_BY_USER_INIT_V2,
        10002,
        0,
        body,
        Vec::new(),
        &account.wid,
    );
    let route = "v2/message/get_by_user_init";
    let response = post_route(sandbox, &account.session, route, "", &request).await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
    response
        .body
        .unwrap()
        .messages_per_user_init_v2_body
        .unwrap()
}

#[tokio::test]
async fn with_pushes_dropped_a_message_is_not_pushed_but_history_and_the_inbox_have_it() {
    let sandbox = spawn_sandbox().await;
    let (a, bob, carol) = (
        alice(&sandbox),
        account(&sandbox, "bob"),
        account(&sandbox, "carol"),
    );
    let mut alice_ws = open(&sandbox, &a).await;
    sandbox.handle.drop_pushes("alice", 1);
    let missed = bob_says(&sandbox, "missed").await;

    let listed = inbox(&sandbox, &a).await;
    let seed = sandbox.handle.seed();
    assert_eq!(listed.conversations.len(), 2);
    for (c, (peer, inbox_type)) in listed.conversations.iter().zip([(&bob, 0), (&carol, 3)]) {
        let seeded = seed
            .conversations
            .iter()
            .find(|s| Some(s.conversation_id.as_str()) == c.conversation_id.as_deref())
            .unwrap();
        assert_eq!(
            c.conversation_short_id,
            Some(seeded.conversation_short_id.get())
        );
        assert_eq!(
            (c.conversation_type, c.inbox_type),
            (Some(1), Some(inbox_type))
        );
        let mut uids: Vec<i64> = c
            .first_page_participants
            .as_ref()
            .unwrap()
            .participants
            .iter()
            .map(|p| p.user_id.unwrap())
            .collect();
        uids.sort_unstable();
        let mut expected = vec![a.uid.get(), peer.uid.get()];
        expected.sort_unstable();
        assert_eq!(uids, expected);
    }
    let [last] = listed.messages.as_slice() else {
        panic!("the newest message of the one conversation with messages: {listed:?}");
    };
    assert_eq!(last.server_message_id, Some(missed));
    assert_eq!(last.sender, Some(bob.uid.get()));

    // The push was withheld: the first alice receives is the next message.
    let seen = bob_says(&sandbox, "seen").await;
    let (_, event) = next_event(&mut alice_ws, &a).await;
    assert_eq!(received(event).server_message_id, seen);
    let page = history(&sandbox, &a, 0, 10).await;
    let ids: Vec<i64> = page
        .messages
        .iter()
        .map(|m| m.server_message_id.unwrap())
        .collect();
    assert_eq!(ids, [seen, missed]);
    assert!(sandbox.handle.faults().is_empty());
}

#[tokio::test]
async fn the_drop_pushes_fault_is_posted_by_name_and_an_unknown_account_is_refused() {
    let sandbox = spawn_sandbox().await;
    let faults = format!("{}/_sandbox/faults", sandbox.base_url());
    let post_fault = |body: &'static str| http().post(&faults).body(body).send();
    let unknown = post_fault(r#"{"fault":"drop_pushes","account":"nobody"}"#);
    assert_eq!(unknown.await.unwrap().status(), 400);
    let known = post_fault(r#"{"fault":"drop_pushes","account":"alice","times":2}"#);
    assert_eq!(known.await.unwrap().status(), 201);
    assert_eq!(sandbox.handle.faults()[0].times, Some(2));

    let a = alice(&sandbox);
    let mut alice_ws = open(&sandbox, &a).await;
    bob_says(&sandbox, "one").await;
    bob_says(&sandbox, "two").await;
    let three = bob_says(&sandbox, "three").await;
    let (_, event) = next_event(&mut alice_ws, &a).await;
    assert_eq!(received(event).server_message_id, three);
}

#[tokio::test]
async fn each_bad_inbound_request_gets_its_own_status_and_stores_nothing() {
    let sandbox = spawn_sandbox().await;
    let ab = conversation(&sandbox, 0);
    let not_an_image = base64::engine::general_purpose::STANDARD.encode(b"plain text");
    let cases = [
        (r#"{"from":"bob","#.to_owned(), 400, "invalid JSON"),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "txt": "hi"}).to_string(),
            400,
            "unknown field",
        ),
        (
            serde_json::json!({"from": "nobody", "conversation_id": ab, "text": "hi"}).to_string(),
            404,
            "no seeded account",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": "0:1:1:2", "text": "hi"})
                .to_string(),
            404,
            "no seeded conversation",
        ),
        (
            serde_json::json!({"from": "carol", "conversation_id": ab, "text": "hi"}).to_string(),
            400,
            "not a participant",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab}).to_string(),
            400,
            "give a message",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "text": " \n"}).to_string(),
            400,
            "empty",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "text": "x".repeat(6001)})
                .to_string(),
            400,
            "longer than 6000",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "image": "%%%"}).to_string(),
            400,
            "not valid base64",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "image": not_an_image})
                .to_string(),
            400,
            "not an image",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "text": "hi", "typing": true})
                .to_string(),
            400,
            "give a message",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab, "read": true}).to_string(),
            409,
            "no message to read",
        ),
        (
            serde_json::json!({"from": "bob", "conversation_id": ab,
                "reaction": {"server_message_id": "123", "emoji": "❤️"}})
            .to_string(),
            404,
            "no message 123",
        ),
    ];
    for (body, status, reason) in cases {
        let (got, answer) = post_raw(&sandbox, body.clone()).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            error.contains(reason),
            "{body}: expected {reason:?} in {error:?}"
        );
    }
    assert!(sandbox.handle.messages().is_empty());
}
