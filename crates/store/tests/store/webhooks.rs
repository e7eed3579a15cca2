//! The webhook queue's fairness and limits every backend must have: a claim
//! keeps each webhook within its share of deliveries in flight, a replay
//! starts the retry window again, and a key's webhook limit holds under
//! concurrent creates. Instantiated beside `inbound_suite!`.

#[macro_export]
macro_rules! webhooks_suite {
    ($open:path) => {
        /// A claim takes the oldest due deliveries, but of each webhook only
        /// as many as keep it within `per_webhook` in flight: a backlog of
        /// one does not hold back another's. What it leaves is not touched
        /// (not leased, not counted as an attempt). A retry waiting is not in
        /// flight, nor is a delivery whose lease ran out (it is due again).
        #[tokio::test]
        async fn a_claim_keeps_each_webhook_within_its_share_in_flight() {
            use tiktok_dm_store::{Store as _, WebhookDeliveryStats, WebhookOutcome};
            use $crate::inbound::{append, event, hook, key_for, pairs};
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = key_for(&store, "k", &[], true).await;
            let slow = store
                .create_webhook(hook(key.id, &["typing"]), 10, 1)
                .await
                .unwrap();
            let quick = store
                .create_webhook(hook(key.id, &["reaction"]), 10, 1)
                .await
                .unwrap();
            let backlog = append(
                &store,
                (0..8).map(|_| event("shopA", "typing", None)).collect(),
                10,
            )
            .await;
            let later = append(
                &store,
                vec![
                    event("shopA", "reaction", None),
                    event("shopA", "reaction", None),
                ],
                20,
            )
            .await;
            let (s, q) = (slow.id.clone(), quick.id.clone());

            let first = store
                .claim_webhook_deliveries(4, 3, 1_000, 100)
                .await
                .unwrap();
            let order: Vec<_> = first
                .iter()
                .map(|d| (d.webhook.id.clone(), d.event.cursor))
                .collect();
            assert_eq!(
                order,
                [
                    (s.clone(), backlog[0]),
                    (s.clone(), backlog[1]),
                    (s.clone(), backlog[2]),
                    (q.clone(), later[0])
                ],
                "three of the backlog, then the next oldest of another webhook, up to the limit"
            );
            let second = store
                .claim_webhook_deliveries(100, 3, 1_000, 100)
                .await
                .unwrap();
            assert_eq!(
                pairs(&second),
                [(q.clone(), later[1])],
                "the slow webhook has three in flight"
            );
            assert!(
                store
                    .claim_webhook_deliveries(100, 3, 1_000, 200)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                store.webhook_delivery_stats().await.unwrap(),
                WebhookDeliveryStats {
                    pending: 5,
                    in_flight: 5
                }
            );

            assert!(
                store
                    .finish_webhook_delivery(first[0].claim(), WebhookOutcome::Delivered, 300)
                    .await
                    .unwrap()
            );
            let next = store
                .claim_webhook_deliveries(100, 3, 1_000, 300)
                .await
                .unwrap();
            assert_eq!(
                (pairs(&next), next[0].attempts),
                (vec![(s.clone(), backlog[3])], 1),
                "one ended, one more goes"
            );
            assert!(
                store
                    .finish_webhook_delivery(
                        first[1].claim(),
                        WebhookOutcome::Retry { at: 50_000 },
                        400
                    )
                    .await
                    .unwrap()
            );
            let next = store
                .claim_webhook_deliveries(100, 3, 1_000, 400)
                .await
                .unwrap();
            assert_eq!(
                pairs(&next),
                [(s.clone(), backlog[4])],
                "a retry waiting is not in flight"
            );

            // At 1 200 the leases taken at 100 have run out (backlog[2] and
            // the quick ones); backlog[3] and [4] (300, 400) hold theirs.
            let expired = store
                .claim_webhook_deliveries(100, 3, 1_000, 1_200)
                .await
                .unwrap();
            let mut expected = vec![
                (s.clone(), backlog[2]),
                (q.clone(), later[0]),
                (q.clone(), later[1]),
            ];
            expected.sort();
            assert_eq!(
                pairs(&expired),
                expected,
                "one room left for the slow webhook: its oldest due"
            );
            assert!(expired.iter().all(|d| d.attempts == 2));
            let untouched = $crate::inbound::claim_all(&store, 60_000).await;
            let mut rest: Vec<_> = untouched
                .iter()
                .map(|d| (d.event.cursor, d.attempts))
                .collect();
            rest.sort_unstable();
            assert_eq!(
                rest,
                [
                    (backlog[1], 2),
                    (backlog[2], 3),
                    (backlog[3], 2),
                    (backlog[4], 2),
                    (backlog[5], 1),
                    (backlog[6], 1),
                    (backlog[7], 1),
                    (later[0], 3),
                    (later[1], 3)
                ],
                "the ones left behind were never leased"
            );
        }

        /// A delivery's retry window starts when it is queued: with its
        /// event, or again by a replay, whether the replay queues it anew (it
        /// had ended) or makes its pending row due.
        #[tokio::test]
        async fn a_replay_queues_again_from_its_own_time() {
            use tiktok_dm_store::{Store as _, WebhookOutcome};
            use $crate::inbound::{append, claim_all, event, hook, key_for};
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = key_for(&store, "k", &[], true).await;
            let w = store
                .create_webhook(hook(key.id, &["typing"]), 10, 1)
                .await
                .unwrap();
            let c = append(
                &store,
                vec![
                    event("shopA", "typing", None),
                    event("shopA", "typing", None),
                ],
                10,
            )
            .await;
            let d = claim_all(&store, 20).await;
            assert_eq!(
                d.iter().map(|d| d.queued_at).collect::<Vec<_>>(),
                [10, 10],
                "queued with the event"
            );
            let gave_up = WebhookOutcome::GaveUp {
                error: "too old".into(),
            };
            assert!(
                store
                    .finish_webhook_delivery(d[0].claim(), gave_up, 30)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .finish_webhook_delivery(
                        d[1].claim(),
                        WebhookOutcome::Retry { at: 1_000_000 },
                        30
                    )
                    .await
                    .unwrap()
            );

            assert_eq!(
                store.replay_webhook(key.id, &w.id, 0, 5_000).await.unwrap(),
                2
            );
            let replayed = claim_all(&store, 5_000).await;
            let mut got: Vec<_> = replayed
                .iter()
                .map(|d| (d.event.cursor, d.queued_at, d.attempts))
                .collect();
            got.sort_unstable();
            assert_eq!(
                got,
                [(c[0], 5_000, 1), (c[1], 5_000, 1)],
                "a new row, and the pending one queued again"
            );
        }

        /// A key's webhook limit holds when creates come at once: exactly
        /// the limit are stored, the others are refused as
        /// `LimitReached`; another key has its own, and a delete makes room.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn creates_at_once_never_take_a_key_past_its_webhook_limit() {
            use tiktok_dm_store::Store as _;
            use $crate::inbound::{hook, key_for};
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = key_for(&store, "k", &[], true).await;
            let other = key_for(&store, "other", &[], true).await;
            let creates: Vec<_> = (0..16)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store.create_webhook(hook(key.id, &["typing"]), 5, 1).await
                    })
                })
                .collect();
            let mut stored = 0;
            for create in creates {
                match create.await.unwrap() {
                    Ok(_) => stored += 1,
                    Err(tiktok_dm_store::Error::LimitReached(m)) => assert!(m.contains('5'), "{m}"),
                    Err(e) => panic!("{e}"),
                }
            }
            let kept = store.webhooks_for_key(key.id).await.unwrap();
            assert_eq!((stored, kept.len()), (5, 5));
            store
                .create_webhook(hook(other.id, &["typing"]), 5, 2)
                .await
                .unwrap();
            assert!(store.delete_webhook(key.id, &kept[0].id).await.unwrap());
            store
                .create_webhook(hook(key.id, &["typing"]), 5, 3)
                .await
                .unwrap();
            let e = store
                .create_webhook(hook(key.id, &["typing"]), 5, 4)
                .await
                .unwrap_err();
            assert!(matches!(e, tiktok_dm_store::Error::LimitReached(_)), "{e}");
            let e = store
                .create_webhook(hook(key.id + 100, &["typing"]), 5, 4)
                .await
                .unwrap_err();
            assert!(matches!(e, tiktok_dm_store::Error::NotFound(_)), "{e}");
        }
    };
}
