//! The shared behaviour of receiving (issue 18) every backend must have: the
//! event log, listening state and catch-up cursors, webhooks and their
//! deliveries. Instantiated beside `store_suite!`.

use tiktok_dm_store::{Appended, EventFilter, NewEvent, Store, StoredEvent};

/// An event of `account` of type `event_type`, with an optional dedupe key.
pub fn event(account: &str, event_type: &str, dedupe_key: Option<&str>) -> NewEvent {
    NewEvent {
        account: account.into(),
        event_type: event_type.into(),
        conversation_id: Some("0:1:1:2".into()),
        dedupe_key: dedupe_key.map(Into::into),
        payload: format!(r#"{{"type":"{event_type}","key":{dedupe_key:?}}}"#),
        occurred_at: 500,
    }
}

/// The cursors of what was logged.
pub fn cursors(appended: &[Appended]) -> Vec<i64> {
    appended.iter().filter_map(|a| a.cursor()).collect()
}

/// Appends events that must all be new; their cursors.
pub async fn append<S: Store>(store: &S, events: Vec<NewEvent>, now: i64) -> Vec<i64> {
    let n = events.len();
    let appended = store.append_events(events, now).await.unwrap();
    let c = cursors(&appended);
    assert_eq!(c.len(), n, "all new: {appended:?}");
    c
}

/// Every event after `after` (no filter).
pub async fn all_after<S: Store>(store: &S, after: i64) -> Vec<StoredEvent> {
    store
        .events_after(after, &EventFilter::default(), 1_000)
        .await
        .unwrap()
}

/// Each stored account's name, listening, status, status time and creation.
pub async fn account_states<S: Store>(
    store: &S,
) -> Vec<(String, bool, tiktok_dm_store::AccountStatus, i64, i64)> {
    store
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.name,
                a.listen,
                a.status,
                a.status_changed_at,
                a.created_at,
            )
        })
        .collect()
}

/// A filter of these accounts and types (`None`: all).
pub fn filter(accounts: Option<&[&str]>, types: Option<&[&str]>) -> EventFilter {
    let owned = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
    EventFilter {
        accounts: accounts.map(owned),
        types: types.map(owned),
    }
}

#[macro_export]
macro_rules! inbound_suite {
    ($open:path, $query:path) => {
        use tiktok_dm_store::{Appended, NewEvent};
        use $crate::inbound::{all_after, append, cursors, event, filter};

        /// Each event gets a cursor above every earlier one, in the order
        /// given, and reads back as it was given (its payload as is), in
        /// cursor order, from any cursor on, at most `limit` at a time.
        #[tokio::test]
        async fn events_get_increasing_cursors_and_read_back_in_order() {
            let (store, _guard) = $open().await;
            assert_eq!(
                store.latest_event_cursor().await.unwrap(),
                0,
                "an empty log"
            );
            assert!(store.append_events(Vec::new(), 1).await.unwrap().is_empty());
            let first = append(
                &store,
                vec![
                    event("shopA", "message.received", Some("m1")),
                    event("shopA", "typing", None),
                ],
                1_000,
            )
            .await;
            let mut raw = event("shopB", "reaction", None);
            raw.payload = r#"{ "emoji" : "❤️", "n": [1, 2.50] }"#.into();
            raw.conversation_id = None;
            let second = append(&store, vec![raw.clone()], 2_000).await;
            assert!(
                first[0] < first[1] && first[1] < second[0],
                "{first:?} {second:?}"
            );
            assert_eq!(store.latest_event_cursor().await.unwrap(), second[0]);

            let all = all_after(&store, 0).await;
            let read: Vec<_> = all
                .iter()
                .map(|e| {
                    (
                        e.cursor,
                        e.account.as_str(),
                        e.event_type.as_str(),
                        e.created_at,
                    )
                })
                .collect();
            assert_eq!(
                read,
                [
                    (first[0], "shopA", "message.received", 1_000),
                    (first[1], "shopA", "typing", 1_000),
                    (second[0], "shopB", "reaction", 2_000)
                ]
            );
            assert_eq!(
                (
                    all[2].payload.as_str(),
                    all[2].conversation_id.as_deref(),
                    all[2].occurred_at
                ),
                (raw.payload.as_str(), None, 500)
            );
            assert_eq!(all[0].conversation_id.as_deref(), Some("0:1:1:2"));
            let later = all_after(&store, first[0]).await;
            assert_eq!(
                later.iter().map(|e| e.cursor).collect::<Vec<_>>(),
                [first[1], second[0]]
            );
            let one = store.events_after(0, &filter(None, None), 1).await.unwrap();
            assert_eq!((one.len(), one[0].cursor), (1, first[0]));
            assert!(all_after(&store, second[0]).await.is_empty());
            assert!(
                store
                    .events_after(0, &filter(None, None), 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }

        /// An event whose account and dedupe key were logged before (or
        /// earlier in the same call) is not logged again; the same key on
        /// another account is another event, and events without a key are
        /// never duplicates.
        #[tokio::test]
        async fn an_event_whose_dedupe_key_was_logged_is_stored_once() {
            let (store, _guard) = $open().await;
            let first = append(
                &store,
                vec![event("shopA", "message.received", Some("m1"))],
                10,
            )
            .await;
            let again = store
                .append_events(
                    vec![
                        event("shopA", "message.received", Some("m2")),
                        event("shopA", "message.received", Some("m1")),
                        event("shopB", "message.received", Some("m1")),
                        event("shopA", "message.received", Some("m2")),
                        event("shopA", "typing", None),
                        event("shopA", "typing", None),
                    ],
                    20,
                )
                .await
                .unwrap();
            assert!(matches!(again[0], Appended::New { .. }), "{again:?}");
            assert_eq!(again[1], Appended::Duplicate, "logged by the earlier call");
            assert!(
                matches!(again[2], Appended::New { .. }),
                "another account's key"
            );
            assert_eq!(again[3], Appended::Duplicate, "logged earlier in this call");
            assert!(
                matches!(
                    (again[4], again[5]),
                    (Appended::New { .. }, Appended::New { .. })
                ),
                "no key, no duplicate"
            );
            let logged: Vec<_> = all_after(&store, 0)
                .await
                .iter()
                .map(|e| (e.cursor, e.created_at))
                .collect();
            let mut expected = vec![(first[0], 10)];
            expected.extend(cursors(&again).into_iter().map(|c| (c, 20)));
            assert_eq!(logged, expected, "five events, once each");
        }

        /// A filter keeps the events of its accounts and of its types; none
        /// matches all, an empty list matches none.
        #[tokio::test]
        async fn events_are_read_by_account_and_by_type() {
            let (store, _guard) = $open().await;
            let c = append(
                &store,
                vec![
                    event("shopA", "message.received", None),
                    event("shopB", "message.received", None),
                    event("shopA", "message.read", None),
                    event("shopC", "typing", None),
                ],
                10,
            )
            .await;
            let read = |f: tiktok_dm_store::EventFilter| {
                let store = store.clone();
                async move {
                    store
                        .events_after(0, &f, 100)
                        .await
                        .unwrap()
                        .iter()
                        .map(|e| e.cursor)
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(read(filter(Some(&["shopA"]), None)).await, [c[0], c[2]]);
            assert_eq!(
                read(filter(Some(&["shopA", "shopC"]), None)).await,
                [c[0], c[2], c[3]]
            );
            assert_eq!(
                read(filter(None, Some(&["message.received"]))).await,
                [c[0], c[1]]
            );
            assert_eq!(
                read(filter(
                    Some(&["shopA", "shopB"]),
                    Some(&["message.read", "typing"])
                ))
                .await,
                [c[2]]
            );
            assert_eq!(read(filter(None, None)).await, c);
            assert!(read(filter(Some(&[]), None)).await.is_empty());
            assert!(read(filter(None, Some(&[]))).await.is_empty());
            assert!(
                read(filter(Some(&["sh\0pA"]), None)).await.is_empty(),
                "a NUL finds nothing"
            );
            let after = store
                .events_after(c[0], &filter(Some(&["shopA"]), None), 100)
                .await
                .unwrap();
            assert_eq!(after.iter().map(|e| e.cursor).collect::<Vec<_>>(), [c[2]]);
        }

        /// Retention deletes the events logged before the cutoff, however
        /// many (in batches); later ones stay, and a cursor is never handed
        /// out twice, even once the newest events were deleted.
        #[tokio::test]
        async fn retention_deletes_events_logged_before_the_cutoff() {
            let (store, _guard) = $open().await;
            let many: Vec<NewEvent> = (0..5_200)
                .map(|i| event("shopA", "typing", Some(&format!("k{i}"))))
                .collect();
            append(&store, many, 100).await;
            let kept = append(&store, vec![event("shopA", "message.received", None)], 300).await;
            assert_eq!(
                store.delete_expired_events(100).await.unwrap(),
                0,
                "none before 100"
            );
            assert_eq!(store.delete_expired_events(200).await.unwrap(), 5_200);
            assert_eq!(
                all_after(&store, 0)
                    .await
                    .iter()
                    .map(|e| e.cursor)
                    .collect::<Vec<_>>(),
                kept
            );
            assert_eq!(store.delete_expired_events(400).await.unwrap(), 1);
            assert_eq!(
                store.latest_event_cursor().await.unwrap(),
                0,
                "an empty log again"
            );
            let next = append(&store, vec![event("shopA", "typing", Some("k0"))], 500).await;
            assert!(next[0] > kept[0], "{next:?} after {kept:?}");
            assert_eq!(store.latest_event_cursor().await.unwrap(), next[0]);
        }

        /// A stored account is listened to and active until told otherwise;
        /// its status's time moves only when the status changes, and a fresh
        /// session makes it active again without changing whether it is
        /// listened to.
        #[tokio::test]
        async fn an_account_is_listened_to_and_active_until_told_otherwise() {
            use tiktok_dm_store::AccountStatus::{Active, Expired};
            let (store, _guard) = $open().await;
            store.put_account("shopA", b"sealed", 10).await.unwrap();
            store.put_account("shopB", b"sealed", 11).await.unwrap();
            let state = |store| $crate::inbound::account_states(store);
            assert_eq!(
                state(&store).await,
                [
                    ("shopA".into(), true, Active, 10, 10),
                    ("shopB".into(), true, Active, 11, 11)
                ]
            );
            assert!(store.set_account_listen("shopA", false).await.unwrap());
            assert!(
                store
                    .set_account_status("shopA", Expired, 50)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .set_account_status("shopA", Expired, 60)
                    .await
                    .unwrap(),
                "unchanged, still found"
            );
            assert_eq!(
                state(&store).await[0],
                ("shopA".into(), false, Expired, 50, 10)
            );
            store.put_account("shopA", b"fresh", 70).await.unwrap();
            assert_eq!(
                state(&store).await[0],
                ("shopA".into(), false, Active, 70, 10),
                "active again, still not listened to"
            );
            store.put_account("shopA", b"fresher", 80).await.unwrap();
            assert_eq!(
                state(&store).await[0].3,
                70,
                "already active: its time stays"
            );
            assert!(store.set_account_listen("shopA", true).await.unwrap());
            assert!(state(&store).await[0].1);
            assert_eq!(
                state(&store).await[1],
                ("shopB".into(), true, Active, 11, 11),
                "the other is untouched"
            );
            assert!(!store.set_account_listen("nobody", false).await.unwrap());
            assert!(
                !store
                    .set_account_status("nobody", Expired, 1)
                    .await
                    .unwrap()
            );
            assert!(!store.set_account_listen("sh\0pA", false).await.unwrap());
            assert!(
                !store
                    .set_account_status("sh\0pA", Expired, 1)
                    .await
                    .unwrap()
            );
            assert_eq!(state(&store).await.len(), 2);
        }

        /// A conversation's catch-up cursor keeps the greatest values
        /// written (a late, older write does not take it back); cursors are
        /// per account and conversation, and go with their account.
        #[tokio::test]
        async fn catch_up_cursors_keep_the_greatest_values_and_go_with_their_account() {
            use tiktok_dm_store::ConversationCursor;
            let (store, _guard) = $open().await;
            store.put_account("shopA", b"sealed", 1).await.unwrap();
            store.put_account("shopB", b"sealed", 1).await.unwrap();
            let cursor = |id: &str, server: i64, index: i64| ConversationCursor {
                conversation_id: id.into(),
                last_server_message_id: server,
                last_index: index,
            };
            assert!(
                store
                    .conversation_cursors("shopA")
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .set_conversation_cursor("shopA", "0:1:1:9", 7_000, 12)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .set_conversation_cursor("shopA", "0:1:1:9", 7_500, 10)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .set_conversation_cursor("shopA", "0:1:1:9", 6_000, 15)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .set_conversation_cursor("shopA", "0:1:1:10", 100, 1)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .set_conversation_cursor("shopB", "0:1:1:9", 1, 1)
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.conversation_cursors("shopA").await.unwrap(),
                [cursor("0:1:1:10", 100, 1), cursor("0:1:1:9", 7_500, 15)]
            );
            assert_eq!(
                store.conversation_cursors("shopB").await.unwrap(),
                [cursor("0:1:1:9", 1, 1)]
            );
            assert!(
                !store
                    .set_conversation_cursor("nobody", "0:1:1:9", 1, 1)
                    .await
                    .unwrap(),
                "no such account"
            );
            assert!(
                store
                    .conversation_cursors("nobody")
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                !store
                    .set_conversation_cursor("sh\0pA", "0:1:1:9", 1, 1)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .conversation_cursors("sh\0pA")
                    .await
                    .unwrap()
                    .is_empty()
            );
            let e = store
                .set_conversation_cursor("shopA", "0:1\0", 1, 1)
                .await
                .unwrap_err();
            assert!(matches!(e, tiktok_dm_store::Error::Invalid(_)), "{e}");

            assert!(store.remove_account("shopA").await.unwrap());
            assert!(
                store
                    .conversation_cursors("shopA")
                    .await
                    .unwrap()
                    .is_empty(),
                "gone with the account"
            );
            store.put_account("shopA", b"again", 2).await.unwrap();
            assert!(
                store
                    .conversation_cursors("shopA")
                    .await
                    .unwrap()
                    .is_empty(),
                "a new account starts over"
            );
            assert_eq!(store.conversation_cursors("shopB").await.unwrap().len(), 1);
        }

        /// A text PostgreSQL cannot hold refuses the whole call, on both
        /// backends: nothing of it is logged.
        #[tokio::test]
        async fn an_event_with_a_nul_character_refuses_its_whole_call() {
            let (store, _guard) = $open().await;
            let mut bad = event("shopA", "typing", None);
            bad.payload = "{\"t\":\"a\0b\"}".into();
            let e = store
                .append_events(vec![event("shopA", "typing", None), bad], 1)
                .await
                .unwrap_err();
            assert!(matches!(e, tiktok_dm_store::Error::Invalid(_)), "{e}");
            let mut bad = event("shopA", "typing", Some("k\0"));
            bad.account = "shopA".into();
            assert!(store.append_events(vec![bad], 1).await.is_err());
            assert!(all_after(&store, 0).await.is_empty());
        }
    };
}
