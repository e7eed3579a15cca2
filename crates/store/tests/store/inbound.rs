//! The shared behaviour of receiving (issue 18) every backend must have: the
//! event log, listening state and catch-up cursors, webhooks and their
//! deliveries. Instantiated beside `store_suite!`.

use tiktok_dm_store::{
    ApiKey, Appended, ClaimedDelivery, EventFilter, NewApiKey, NewEvent, NewWebhook, Store,
    StoredEvent,
};

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

/// A key that may see `accounts`, or any account.
pub async fn key_for<S: Store>(store: &S, name: &str, accounts: &[&str], any: bool) -> ApiKey {
    let new = NewApiKey {
        name: name.into(),
        prefix: format!("tdm_{name}"),
        key_hash: crate::suite::hash(name),
        daily_limit: None,
        monthly_limit: None,
        accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        any_account: any,
    };
    store.create_api_key(new, 1).await.unwrap()
}

/// A webhook of `key_id` for `events`.
pub fn hook(key_id: i64, events: &[&str]) -> NewWebhook {
    NewWebhook {
        key_id,
        url: format!("https://hooks.example/{key_id}/{}", events.join("+")),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret_sealed: vec![9, 8, 7],
    }
}

/// Every due delivery at `now` (leased a minute).
pub async fn claim_all<S: Store>(store: &S, now: i64) -> Vec<ClaimedDelivery> {
    store
        .claim_webhook_deliveries(100, 100, 60_000, now)
        .await
        .unwrap()
}

/// Each delivery's webhook id and event cursor, sorted.
pub fn pairs(deliveries: &[ClaimedDelivery]) -> Vec<(String, i64)> {
    let mut p: Vec<_> = deliveries
        .iter()
        .map(|d| (d.webhook.id.clone(), d.event.cursor))
        .collect();
    p.sort();
    p
}

#[macro_export]
macro_rules! inbound_suite {
    ($open:path, $query:path) => {
        use tiktok_dm_store::{Appended, NewEvent};
        use tiktok_dm_store::{WebhookDeliveryStats, WebhookOutcome};
        use $crate::inbound::{all_after, append, claim_all, cursors, event, filter, hook, key_for, pairs};

        /// Each event gets a cursor above every earlier one, in the order
        /// given, and reads back as it was given (its payload as is), in
        /// cursor order, from any cursor on, at most `limit` at a time.
        #[tokio::test]
        async fn events_get_increasing_cursors_and_read_back_in_order() {
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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
            let Some((store, _guard)) = $open().await else { return; };
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

        /// A key keeps its webhooks (ids `wh_` and 16 hex digits, event types
        /// each once, in order); only the key that owns one may delete it.
        #[tokio::test]
        async fn webhooks_are_kept_per_key_and_deleted_only_by_their_key() {
            let Some((store, _guard)) = $open().await else { return; };
            let a = key_for(&store, "a", &[], true).await;
            let b = key_for(&store, "b", &[], true).await;
            let first = store.create_webhook(hook(a.id, &["message.received", "typing", "message.received"]), 10, 10).await.unwrap();
            let second = store.create_webhook(hook(a.id, &["reaction"]), 10, 20).await.unwrap();
            let other = store.create_webhook(hook(b.id, &[]), 10, 30).await.unwrap();
            assert_eq!(first.events, ["message.received", "typing"]);
            assert!(other.events.is_empty());
            for w in [&first, &second, &other] {
                let hex = w.id.strip_prefix("wh_").unwrap();
                assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{}", w.id);
            }
            assert!(first.id != second.id && second.id != other.id);
            assert_eq!((first.key_id, first.secret_sealed.as_slice(), first.created_at), (a.id, &[9, 8, 7][..], 10));
            assert_eq!(store.webhooks_for_key(a.id).await.unwrap(), [first.clone(), second.clone()]);
            assert_eq!(store.webhook(&first.id).await.unwrap(), Some(first.clone()));
            assert!(!store.delete_webhook(b.id, &first.id).await.unwrap(), "not b's");
            assert!(store.delete_webhook(a.id, &first.id).await.unwrap());
            assert!(!store.delete_webhook(a.id, &first.id).await.unwrap(), "gone");
            assert_eq!(store.webhook(&first.id).await.unwrap(), None);
            assert_eq!(store.webhooks_for_key(a.id).await.unwrap(), [second]);
            assert_eq!(store.webhooks_for_key(b.id).await.unwrap(), [other]);

            let e = store.create_webhook(hook(a.id + 100, &["typing"]), 10, 40).await.unwrap_err();
            assert!(matches!(e, tiktok_dm_store::Error::NotFound(_)), "{e}");
            let mut nul = hook(a.id, &["typing"]);
            nul.url = "https://x\0".into();
            assert!(matches!(store.create_webhook(nul, 10, 40).await.unwrap_err(), tiktok_dm_store::Error::Invalid(_)));
            assert_eq!(store.webhook("wh_\0").await.unwrap(), None);
            assert!(!store.delete_webhook(a.id, "wh_\0").await.unwrap());
            assert_eq!(store.webhooks_for_key(a.id).await.unwrap().len(), 1, "nothing else was stored");
        }

        /// Appending an event queues it, in the same transaction, for every
        /// webhook listing its type whose key is not revoked and may see its
        /// account (any account, or one listed for the key); a duplicate
        /// queues nothing, and a webhook made later gets only later events.
        #[tokio::test]
        async fn an_event_is_queued_for_every_webhook_that_lists_it_and_may_see_its_account() {
            let Some((store, _guard)) = $open().await else { return; };
            let any = key_for(&store, "any", &[], true).await;
            let a = key_for(&store, "a", &["shopA"], false).await;
            let b = key_for(&store, "b", &["shopB", "shopD"], false).await;
            let gone = key_for(&store, "gone", &[], true).await;
            let all = store.create_webhook(hook(any.id, &["message.received", "message.read"]), 10, 1).await.unwrap();
            let a_received = store.create_webhook(hook(a.id, &["message.received"]), 10, 1).await.unwrap();
            let a_typing = store.create_webhook(hook(a.id, &["typing"]), 10, 1).await.unwrap();
            let b_received = store.create_webhook(hook(b.id, &["message.received"]), 10, 1).await.unwrap();
            store.create_webhook(hook(gone.id, &["message.received"]), 10, 1).await.unwrap();
            assert!(store.revoke_api_key("gone", 2).await.unwrap());
            let mut first = event("shopA", "message.received", Some("m1"));
            first.payload = r#"{"text":"hi"}"#.into();
            let c = append(&store, vec![
                first.clone(),
                event("shopB", "message.read", None),
                event("shopA", "typing", None),
                event("shopC", "message.received", None),
            ], 100).await;
            let dup = store.append_events(vec![event("shopA", "message.received", Some("m1"))], 110).await.unwrap();
            assert_eq!(dup, [Appended::Duplicate]);
            assert_eq!(store.webhook_delivery_stats().await.unwrap(), WebhookDeliveryStats { pending: 5, in_flight: 0 });

            let late = store.create_webhook(hook(any.id, &["message.received"]), 10, 120).await.unwrap();
            let d = claim_all(&store, 130).await;
            let mut expected = vec![
                (all.id.clone(), c[0]), (a_received.id.clone(), c[0]),
                (all.id.clone(), c[1]),
                (a_typing.id.clone(), c[2]),
                (all.id.clone(), c[3]),
            ];
            expected.sort();
            assert_eq!(pairs(&d), expected, "b's webhook sees neither shopA nor shopC, the revoked key's none");
            assert!(d.iter().all(|x| x.webhook.id != b_received.id && x.webhook.id != late.id));
            let one = d.iter().find(|x| x.webhook.id == a_received.id).unwrap();
            assert_eq!((one.event.payload.as_str(), one.event.account.as_str(), one.event.created_at, one.attempts), (first.payload.as_str(), "shopA", 100, 1));
            assert_eq!((one.webhook.url.as_str(), one.webhook.secret_sealed.as_slice(), one.webhook.events.clone()), (a_received.url.as_str(), &[9, 8, 7][..], vec!["message.received".to_owned()]));
            assert_eq!(store.webhook_delivery_stats().await.unwrap(), WebhookDeliveryStats { pending: 0, in_flight: 5 });

            let d = append(&store, vec![event("shopD", "message.received", None)], 200).await;
            assert_eq!(pairs(&claim_all(&store, 200).await), {
                let mut p = vec![(all.id.clone(), d[0]), (b_received.id.clone(), d[0]), (late.id.clone(), d[0])];
                p.sort();
                p
            });
        }

        /// A claimed delivery is leased: nobody else gets it until its lease
        /// runs out, then it is claimed again under a new token, and the old
        /// claim's outcome changes nothing. A retry is due at its time, not
        /// before; a delivered or given up one is never due again.
        #[tokio::test]
        async fn a_delivery_is_leased_fenced_and_due_again_only_at_its_retry_time() {
            let Some((store, guard)) = $open().await else { return; };
            let key = key_for(&store, "k", &[], true).await;
            store.create_webhook(hook(key.id, &["typing"]), 10, 1).await.unwrap();
            let c = append(&store, vec![event("shopA", "typing", None), event("shopA", "typing", None)], 10).await;
            assert!(claim_all(&store, 9).await.is_empty(), "not due before it was queued");
            let first = store.claim_webhook_deliveries(1, 100, 1_000, 100).await.unwrap();
            assert_eq!((first.len(), first[0].event.cursor, first[0].attempts), (1, c[0], 1), "oldest first, at most the limit");
            let second = store.claim_webhook_deliveries(10, 100, 1_000, 100).await.unwrap();
            assert_eq!(second.iter().map(|d| d.event.cursor).collect::<Vec<_>>(), [c[1]], "the first is leased");
            assert!(claim_all(&store, 1_100).await.is_empty(), "leased until 1100");
            let again = store.claim_webhook_deliveries(1, 100, 1_000, 1_101).await.unwrap();
            assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
            assert_ne!(again[0].token, first[0].token);
            let stale = first[0].claim();
            assert!(!store.finish_webhook_delivery(stale, WebhookOutcome::Delivered, 1_200).await.unwrap(), "its lease was lost");
            assert!(store.finish_webhook_delivery(again[0].claim(), WebhookOutcome::Retry { at: 5_000 }, 1_200).await.unwrap());
            assert!(!store.finish_webhook_delivery(again[0].claim(), WebhookOutcome::Delivered, 1_300).await.unwrap(), "no longer being delivered");
            assert!(store.claim_webhook_deliveries(10, 100, 1_000, 4_999).await.unwrap().iter().all(|d| d.id != first[0].id), "not before its time");
            let retried = store.claim_webhook_deliveries(10, 100, 1_000, 5_000).await.unwrap();
            let retried = retried.iter().find(|d| d.id == first[0].id).unwrap();
            assert_eq!(retried.attempts, 3);
            assert!(store.finish_webhook_delivery(retried.claim(), WebhookOutcome::Delivered, 5_100).await.unwrap());
            let last = claim_all(&store, 6_000).await;
            assert_eq!((last.len(), last[0].event.cursor, last[0].attempts), (1, c[1], 3), "its leases ran out too (claimed at 100, 4 999, now)");
            let error = WebhookOutcome::GaveUp { error: "410 Gone: a\0b".into() };
            assert!(store.finish_webhook_delivery(last[0].claim(), error, 6_100).await.unwrap(), "a NUL in the error does not lose the outcome");
            assert!(claim_all(&store, 1_000_000).await.is_empty(), "delivered and given up are final");
            assert_eq!(store.webhook_delivery_stats().await.unwrap(), WebhookDeliveryStats::default());
            let ended = $query(&guard, "SELECT state || ':' || attempts || ':' || COALESCE(error, '-') FROM webhook_deliveries ORDER BY id").await;
            assert_eq!(ended, ["delivered:3:-", "failed:3:410 Gone: a\u{fffd}b"]);
        }

        /// A replay queues again, as new deliveries due now, the events after
        /// a cursor that the webhook receives; an event whose delivery is
        /// still pending stays one row (made due now, its attempts counted
        /// afresh), one being delivered is left to its worker. Only the
        /// webhook's own key may replay it.
        #[tokio::test]
        async fn a_replay_queues_again_the_events_after_a_cursor() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = key_for(&store, "k", &["shopA"], false).await;
            let other = key_for(&store, "other", &[], true).await;
            let w = store.create_webhook(hook(key.id, &["message.received"]), 10, 1).await.unwrap();
            let c = append(&store, vec![
                event("shopA", "message.received", None),
                event("shopA", "message.received", None),
                event("shopA", "typing", None),
                event("shopB", "message.received", None),
            ], 10).await;
            for d in claim_all(&store, 20).await {
                assert!(store.finish_webhook_delivery(d.claim(), WebhookOutcome::Delivered, 30).await.unwrap());
            }
            assert_eq!(store.replay_webhook(other.id, &w.id, 0, 40).await.unwrap(), 0, "not its webhook");
            assert_eq!(store.replay_webhook(key.id, "wh_0000000000000000", 0, 40).await.unwrap(), 0);
            assert_eq!(store.replay_webhook(key.id, &w.id, c[0], 40).await.unwrap(), 1, "the second; not typing, not shopB");
            let replayed = claim_all(&store, 40).await;
            assert_eq!((pairs(&replayed), replayed[0].attempts), (vec![(w.id.clone(), c[1])], 1));
            assert!(store.finish_webhook_delivery(replayed[0].claim(), WebhookOutcome::Retry { at: 1_000_000 }, 50).await.unwrap());

            assert_eq!(store.replay_webhook(key.id, &w.id, 0, 60).await.unwrap(), 2, "the first anew, the second made due");
            assert_eq!(store.webhook_delivery_stats().await.unwrap().pending, 2, "one row each");
            let d = claim_all(&store, 60).await;
            assert_eq!(pairs(&d), [(w.id.clone(), c[0]), (w.id.clone(), c[1])]);
            assert!(d.iter().all(|d| d.attempts == 1), "counted afresh");
            assert_eq!(store.replay_webhook(key.id, &w.id, 0, 70).await.unwrap(), 0, "both being delivered");
            assert_eq!(store.webhook_delivery_stats().await.unwrap(), WebhookDeliveryStats { pending: 0, in_flight: 2 });
            assert_eq!(store.replay_webhook(key.id, "wh_\0", 0, 70).await.unwrap(), 0);
        }

        /// A deleted webhook's deliveries go with it, and expired events'
        /// deliveries with them; a revoked key's webhooks lose their open
        /// deliveries and get no more.
        #[tokio::test]
        async fn deleting_a_webhook_expiring_events_or_revoking_a_key_removes_their_deliveries() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = key_for(&store, "k", &[], true).await;
            let doomed = key_for(&store, "doomed", &[], true).await;
            let one = store.create_webhook(hook(key.id, &["typing"]), 10, 1).await.unwrap();
            let two = store.create_webhook(hook(key.id, &["typing"]), 10, 1).await.unwrap();
            store.create_webhook(hook(doomed.id, &["typing"]), 10, 1).await.unwrap();
            let old = append(&store, vec![event("shopA", "typing", None)], 10).await;
            let new = append(&store, vec![event("shopA", "typing", None)], 500).await;
            assert_eq!(store.webhook_delivery_stats().await.unwrap().pending, 6);
            assert!(store.revoke_api_key("doomed", 600).await.unwrap());
            assert_eq!(store.webhook_delivery_stats().await.unwrap().pending, 4);
            assert!(store.delete_webhook(key.id, &one.id).await.unwrap());
            assert_eq!(store.webhook_delivery_stats().await.unwrap().pending, 2);
            assert_eq!(store.delete_expired_events(100).await.unwrap(), 1);
            assert_eq!(pairs(&claim_all(&store, 700).await), [(two.id.clone(), new[0])]);
            assert!(old[0] < new[0]);
            append(&store, vec![event("shopA", "typing", None)], 800).await;
            assert_eq!(claim_all(&store, 900).await.len(), 1, "only two's");
            assert_eq!(store.webhook_delivery_stats().await.unwrap().in_flight, 2);
        }
    };
}
