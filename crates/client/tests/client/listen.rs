//! Listening: pushed events, catch-up after missed pushes and reconnects,
//! conversations and history.

use std::time::Duration;

use tiktok_dm_client::{
    Direction, Event, ListenOptions, Listened, Listener, ReceivedKind, ReceivedMessage, Session,
    TransportMode,
};
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{ALICE, alice_bob, config, connect};

const BOB: &str = "sandbox-session-bob";

async fn bob(sandbox: &TestSandbox) -> Session {
    Session::connect(config(sandbox, BOB, TransportMode::Http).build().unwrap())
        .await
        .unwrap()
}

/// The next message event, skipping catch-up reports.
async fn next_message(listener: &mut Listener) -> ReceivedMessage {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .expect("an event within 10 s")
            .expect("the listener is running");
        match item {
            Listened::Event(e) => match *e {
                Event::MessageReceived(m) => return m,
                other => panic!("unexpected {other:?}"),
            },
            Listened::CaughtUp { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Everything yielded within `wait` (in all).
async fn drain(listener: &mut Listener, wait: Duration) -> Vec<Listened> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, listener.next()).await {
        out.push(item);
    }
    out
}

fn texts(items: &[Listened]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Listened::Event(e) => match e.as_ref() {
                Event::MessageReceived(m) => m.text.clone(),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_message_from_the_peer_arrives_inbound_and_our_own_send_outbound() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Ws).await;
    let mut listener = alice.listen(ListenOptions::default());
    let bob = bob(&sandbox).await;
    let target = alice_bob(&sandbox);

    let sent = bob.send_text(&target, "hello alice").await.unwrap();
    let m = next_message(&mut listener).await;
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, ReceivedKind::Text);
    assert_eq!(m.text.as_deref(), Some("hello alice"));
    assert_eq!(m.sender_uid, bob.identity().uid.get());
    assert_eq!(m.server_message_id, sent.server_message_id.get());
    assert_eq!(
        m.conversation_short_id,
        Some(target.conversation_short_id.get())
    );

    alice.send_text(&target, "hi bob").await.unwrap();
    let echo = next_message(&mut listener).await;
    assert_eq!(echo.direction, Direction::Outbound);
    assert_eq!(echo.text.as_deref(), Some("hi bob"));
}

#[tokio::test]
async fn a_dropped_push_is_caught_up_by_the_poll_once_and_in_order() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Ws).await;
    let mut listener = alice.listen(ListenOptions {
        poll_interval: Some(Duration::from_millis(300)),
        ..ListenOptions::default()
    });
    let bob = bob(&sandbox).await;
    let target = alice_bob(&sandbox);
    bob.send_text(&target, "first").await.unwrap();
    assert_eq!(
        next_message(&mut listener).await.text.as_deref(),
        Some("first")
    );

    sandbox.handle.drop_pushes("alice", 2);
    bob.send_text(&target, "missed one").await.unwrap();
    bob.send_text(&target, "missed two").await.unwrap();
    bob.send_text(&target, "pushed").await.unwrap();

    let items = drain(&mut listener, Duration::from_millis(1500)).await;
    let got = texts(&items);
    // "pushed" may come before the catch-up finds the two it missed; each
    // comes exactly once, and the missed ones in their order.
    assert_eq!(got.len(), 3, "{got:?}");
    for t in ["missed one", "missed two", "pushed"] {
        assert_eq!(got.iter().filter(|g| *g == t).count(), 1, "{got:?}");
    }
    let one = got.iter().position(|g| g == "missed one").unwrap();
    let two = got.iter().position(|g| g == "missed two").unwrap();
    assert!(one < two, "{got:?}");
}

#[tokio::test(start_paused = true)]
async fn messages_sent_while_the_socket_was_down_are_caught_up_after_the_reconnect() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Ws).await;
    let mut listener = alice.listen(ListenOptions::default());
    let bob = bob(&sandbox).await;
    let target = alice_bob(&sandbox);
    // The pushes of these are lost with the socket, which goes quiet and is
    // replaced.
    sandbox.handle.drop_pushes("alice", 2);
    sandbox.handle.mute_heartbeats(1);
    bob.send_text(&target, "while away 1").await.unwrap();
    bob.send_text(&target, "while away 2").await.unwrap();
    tokio::time::sleep(Duration::from_secs(35)).await;
    alice.wait_until_connected().await;
    assert_eq!(sandbox.handle.handshakes(), 2, "the socket was replaced");
    let items = drain(&mut listener, Duration::from_secs(2)).await;
    assert_eq!(texts(&items), ["while away 1", "while away 2"]);
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Listened::CaughtUp { events: 2, .. })),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_listener_resuming_from_cursors_catches_up_what_came_while_it_was_stopped() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let bob = bob(&sandbox).await;
    let target = alice_bob(&sandbox);
    bob.send_text(&target, "seen before").await.unwrap();
    let first = alice
        .history(target.conversation_id.as_str(), None, None, 10)
        .await
        .unwrap();
    let Event::MessageReceived(seen) = &first.events[0] else {
        panic!()
    };
    let cursor = seen.index_in_conversation.unwrap();
    bob.send_text(&target, "new 1").await.unwrap();
    bob.send_text(&target, "new 2").await.unwrap();

    let mut listener = alice.listen(ListenOptions {
        cursors: [(target.conversation_id.as_str().to_owned(), cursor)].into(),
        catch_up_at_start: true,
        ..ListenOptions::default()
    });
    let items = drain(&mut listener, Duration::from_millis(700)).await;
    assert_eq!(texts(&items), ["new 1", "new 2"]);
    let Some(Listened::CaughtUp {
        events: 2, cursors, ..
    }) = items.last()
    else {
        panic!("{items:?}")
    };
    // The cursor to resume from is the newest message's.
    let newest = alice
        .history(target.conversation_id.as_str(), None, None, 1)
        .await
        .unwrap();
    let Event::MessageReceived(newest) = &newest.events[0] else {
        panic!()
    };
    assert_eq!(
        cursors.get(target.conversation_id.as_str()),
        newest.index_in_conversation.as_ref()
    );
}

#[tokio::test]
async fn a_new_listener_does_not_replay_old_history() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Ws).await;
    let bob = bob(&sandbox).await;
    bob.send_text(&alice_bob(&sandbox), "old").await.unwrap();
    // A message of the very millisecond a listener starts counts as new
    // (better twice than never); this one is older.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut listener = alice.listen(ListenOptions {
        catch_up_at_start: true,
        ..ListenOptions::default()
    });
    let items = drain(&mut listener, Duration::from_millis(500)).await;
    assert!(
        matches!(items.as_slice(), [Listened::CaughtUp { events: 0, .. }]),
        "{items:?}"
    );
}

#[tokio::test]
async fn conversations_list_short_ids_peers_requests_and_last_messages() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let bob = bob(&sandbox).await;
    bob.send_text(&alice_bob(&sandbox), "latest").await.unwrap();
    let list = alice.conversations().await.unwrap();
    let seed = sandbox.handle.seed();
    assert_eq!(list.len(), 2, "{list:?}");
    let with_bob = list
        .iter()
        .find(|c| c.conversation_id == seed.conversations[0].conversation_id.as_str())
        .unwrap();
    assert_eq!(
        with_bob.conversation_short_id,
        Some(seed.conversations[0].conversation_short_id.get())
    );
    assert_eq!(with_bob.peer_uid, Some(bob.identity().uid.get()));
    assert!(!with_bob.message_request);
    assert_eq!(
        with_bob.last_message.as_ref().unwrap().text.as_deref(),
        Some("latest")
    );
    let with_carol = list
        .iter()
        .find(|c| c.conversation_id == seed.conversations[1].conversation_id.as_str())
        .unwrap();
    assert!(with_carol.message_request);
    assert_eq!(
        with_carol.peer_uid,
        Some(sandbox.handle.account("carol").unwrap().uid.get())
    );
    let bob_sees = bob.conversations().await.unwrap();
    assert_eq!(bob_sees.len(), 1, "bob takes part in one conversation");
}

#[tokio::test]
async fn history_pages_back_through_every_message_once() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let bob = bob(&sandbox).await;
    let target = alice_bob(&sandbox);
    for i in 0..5 {
        bob.send_text(&target, &format!("m{i}")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = alice
            .history(
                target.conversation_id.as_str(),
                Some(target.conversation_short_id.get()),
                before,
                2,
            )
            .await
            .unwrap();
        assert!(page.events.len() <= 2);
        for e in &page.events {
            if let Event::MessageReceived(m) = e {
                seen.push(m.text.clone().unwrap());
            }
        }
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"]);
    let err = alice.history("", None, None, 2).await.unwrap_err();
    assert!(err.to_string().contains("conversation_id"), "{err}");
}

#[tokio::test]
async fn a_listener_reports_a_rejected_session_and_ends() {
    let sandbox = spawn_sandbox().await;
    let alice = Session::connect(config(&sandbox, ALICE, TransportMode::Ws).build().unwrap())
        .await
        .unwrap();
    let mut listener = alice.listen(ListenOptions::default());
    sandbox.handle.invalid_session(5);
    sandbox.handle.close_socket_on_request(1);
    // A request closes the socket; the reconnect is refused as logged out.
    let _ = alice
        .send_text(&alice_bob(&sandbox), "closes the socket")
        .await;
    let items = drain(&mut listener, Duration::from_secs(5)).await;
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Listened::SessionRejected { .. })),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_catch_up_that_fails_is_tried_again_and_finds_what_was_missed() {
    let sandbox = spawn_sandbox().await;
    let alice = connect(&sandbox, TransportMode::Auto).await;
    let bob = bob(&sandbox).await;
    bob.send_text(&alice_bob(&sandbox), "while stopped")
        .await
        .unwrap();
    // The first catch-up's requests fail; nothing else will start one.
    sandbox.handle.http_status(500, 2);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let mut listener = alice.listen(ListenOptions {
        new_since_ms: Some(since),
        catch_up_at_start: true,
        ..ListenOptions::default()
    });
    let items = drain(&mut listener, Duration::from_secs(8)).await;
    assert!(
        matches!(items.first(), Some(Listened::CatchUpFailed(_))),
        "{items:?}"
    );
    assert_eq!(texts(&items), ["while stopped"]);
}
