//! Gateways, lane leases and pacing (issue 19), on every backend: a lease
//! has one holder at a time and changes hands only when free, expired or
//! given up (raising its token); claims take only the claimer's lanes; a
//! paced claim spaces one pace key's slots and never takes one past its
//! horizon. Instantiated beside `store_suite!`.

use tiktok_dm_store::{
    ClaimScope, Claimed, GatewayBeat, Kind, LeaseChange, NewRequest, OutboxMessage, Pace, Store,
};

/// A heartbeat of gateway `id` at `now`, alive for 10 s.
pub fn beat(id: &str, now: i64) -> GatewayBeat {
    GatewayBeat {
        id: id.into(),
        started_at: 0,
        expires_at: now + 10_000,
    }
}

/// Gateway `id` takes (or renews) `lanes` for 10 s; the lanes it holds after.
pub async fn take<S: Store>(store: &S, id: &str, lanes: &[String], now: i64) -> Vec<(String, i64)> {
    let change = LeaseChange {
        gateway: id.into(),
        take: lanes.to_vec(),
        release: Vec::new(),
        force: false,
        lease_ms: 10_000,
    };
    held(store, change, now).await
}

/// Runs `change`; the lanes and tokens held after.
pub async fn held<S: Store>(store: &S, change: LeaseChange, now: i64) -> Vec<(String, i64)> {
    store
        .change_leases(change, now)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.lane, h.token))
        .collect()
}

/// A claim by `id` with `pace`, 1.5 s of horizon.
pub async fn claim_as<S: Store>(
    store: &S,
    id: &str,
    pace: Pace,
    now: i64,
    max: u32,
) -> Vec<OutboxMessage> {
    let scope = ClaimScope {
        gateway: id.into(),
        lease_ms: 60_000,
        pace,
        horizon_ms: 1_500,
    };
    let claimed: Vec<Claimed> = store.claim_due(now, &scope, max).await.unwrap();
    claimed.into_iter().map(|c| c.unwrap()).collect()
}

/// A one-text request on `lane`.
pub fn on_lane(id: &str, key: i64, lane: &str) -> NewRequest {
    let mut r = crate::suite::request(id, key, None, &[Kind::Text]);
    r.lane = lane.into();
    r
}

#[macro_export]
macro_rules! lanes_suite {
    ($open:path) => {
        use tiktok_dm_store::{LeaseChange, Pace, account_lane, session_lane};
        use $crate::lanes::{beat, claim_as, held, on_lane, take};

        /// Live gateways are listed, dead ones not; every stored account's
        /// lane is listed, and every lane with messages to deliver.
        #[tokio::test]
        async fn heartbeats_list_live_gateways_and_every_lane() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            store.put_account("shop", b"s", 1).await.unwrap();
            let key = $crate::suite::new_key(&store, "k", None).await;
            store
                .enqueue(on_lane("r1", key.id, &session_lane("abc")), &[], 5)
                .await
                .unwrap();
            store.heartbeat(beat("gw-a", 0), 0).await.unwrap();
            let seen = store.heartbeat(beat("gw-b", 5_000), 5_000).await.unwrap();
            let ids: Vec<_> = seen.gateways.iter().map(|g| g.id.as_str()).collect();
            assert_eq!(ids, ["gw-a", "gw-b"]);
            let lanes: Vec<_> = seen.lanes.iter().map(|l| l.lane.clone()).collect();
            assert_eq!(lanes, [account_lane("shop"), session_lane("abc")]);
            assert!(seen.lanes.iter().all(|l| l.owner.is_none()));
            // gw-a's heartbeat ran out at 10 s.
            let later = store.heartbeat(beat("gw-b", 12_000), 12_000).await.unwrap();
            let ids: Vec<_> = later.gateways.iter().map(|g| g.id.as_str()).collect();
            assert_eq!(ids, ["gw-b"]);
        }

        /// One holder at a time: a live lease of another is not taken; an
        /// expired or given-up one is, with a higher token; renewing one's
        /// own keeps the token; `force` takes any.
        #[tokio::test]
        async fn a_lease_has_one_holder_and_changes_hands_with_a_higher_token() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            store.put_account("shop", b"s", 1).await.unwrap();
            let lane = vec![account_lane("shop")];
            assert_eq!(take(&store, "gw-a", &lane, 0).await, [(lane[0].clone(), 1)]);
            assert!(
                take(&store, "gw-b", &lane, 5_000).await.is_empty(),
                "gw-a holds it until 10 s"
            );
            assert_eq!(
                take(&store, "gw-a", &lane, 6_000).await,
                [(lane[0].clone(), 1)],
                "renewed"
            );
            assert!(
                take(&store, "gw-b", &lane, 15_000).await.is_empty(),
                "renewed until 16 s"
            );
            assert_eq!(
                take(&store, "gw-b", &lane, 16_001).await,
                [(lane[0].clone(), 2)]
            );
            let gone = LeaseChange {
                gateway: "gw-b".into(),
                release: lane.clone(),
                lease_ms: 10_000,
                ..LeaseChange::default()
            };
            assert!(held(&store, gone, 17_000).await.is_empty());
            assert_eq!(
                take(&store, "gw-a", &lane, 17_001).await,
                [(lane[0].clone(), 3)]
            );
            let force = LeaseChange {
                gateway: "gw-c".into(),
                take: lane.clone(),
                force: true,
                lease_ms: 10_000,
                ..LeaseChange::default()
            };
            assert_eq!(held(&store, force, 17_002).await, [(lane[0].clone(), 4)]);
            let seen = store.heartbeat(beat("gw-c", 17_003), 17_003).await.unwrap();
            assert_eq!(seen.lanes[0].owner.as_deref(), Some("gw-c"));
            assert_eq!(seen.lanes[0].token, 4);
        }

        /// A day after its lease ran out, a lane with nothing to deliver
        /// and no stored account (a per-request session's) is forgotten: a
        /// new lease on it starts again at token 1. An account's is kept.
        #[tokio::test]
        async fn heartbeats_forget_idle_session_lanes_but_keep_accounts() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            store.put_account("shop", b"s", 1).await.unwrap();
            let lanes = vec![session_lane("old"), account_lane("shop")];
            take(&store, "gw", &lanes, 0).await;
            let day = 86_400_000;
            store.heartbeat(beat("gw", 5_000), 5_000).await.unwrap();
            let kept = take(&store, "gw2", &lanes, 10_001).await;
            assert_eq!(
                kept,
                [(lanes[1].clone(), 2), (lanes[0].clone(), 2)],
                "not yet a day"
            );
            store.heartbeat(beat("gw", 3 * day), 3 * day).await.unwrap();
            let again = take(&store, "gw3", &lanes, 3 * day + 1).await;
            // Given up, it is kept a day too: its token goes on rising.
            let gone = LeaseChange {
                gateway: "gw3".into(),
                release: lanes.clone(),
                lease_ms: 10_000,
                ..LeaseChange::default()
            };
            held(&store, gone, 3 * day + 2).await;
            store
                .heartbeat(beat("gw", 3 * day + 3), 3 * day + 3)
                .await
                .unwrap();
            let taken = take(&store, "gw4", &lanes, 3 * day + 4).await;
            assert_eq!(taken, [(lanes[1].clone(), 4), (lanes[0].clone(), 2)]);
            assert_eq!(again, [(lanes[1].clone(), 3), (lanes[0].clone(), 1)]);
        }

        /// A gateway claims only the messages of lanes it holds, and none
        /// once its lease ran out.
        #[tokio::test]
        async fn claims_take_only_the_claimers_lanes() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = $crate::suite::new_key(&store, "k", None).await;
            let (one, two) = (account_lane("one"), account_lane("two"));
            store
                .enqueue(on_lane("r1", key.id, &one), &[], 1)
                .await
                .unwrap();
            store
                .enqueue(on_lane("r2", key.id, &two), &[], 2)
                .await
                .unwrap();
            take(&store, "gw-a", std::slice::from_ref(&one), 10).await;
            take(&store, "gw-b", std::slice::from_ref(&two), 10).await;
            let a = claim_as(&store, "gw-a", Pace::default(), 20, 10).await;
            assert_eq!(
                a.iter().map(|m| m.request_id.as_str()).collect::<Vec<_>>(),
                ["r1"]
            );
            assert_eq!(a[0].lane, one);
            store
                .enqueue(on_lane("r3", key.id, &one), &[], 30)
                .await
                .unwrap();
            assert!(
                claim_as(&store, "gw-b", Pace::default(), 40, 10)
                    .await
                    .iter()
                    .all(|m| m.lane == two)
            );
            // gw-a's lease ran out at 10,010: its lane waits for a holder.
            assert!(
                claim_as(&store, "gw-a", Pace::default(), 10_011, 10)
                    .await
                    .is_empty()
            );
        }

        /// Captions waiting for their images, which were given back for
        /// later, do not fill a claim: the images and another lane's message
        /// are claimed (on PostgreSQL they once took every slot, and the
        /// claim came back empty however many were due).
        #[tokio::test]
        async fn captions_waiting_for_their_images_do_not_fill_a_claim() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = $crate::suite::new_key(&store, "k", None).await;
            let (a, b) = (account_lane("a"), account_lane("b"));
            for i in 1..=3 {
                let mut r = $crate::suite::request(
                    &format!("r{i}"),
                    key.id,
                    None,
                    &[tiktok_dm_store::Kind::Image, tiktok_dm_store::Kind::Text],
                );
                r.lane = a.clone();
                store.enqueue(r, &[], i).await.unwrap();
            }
            take(&store, "gw", &[a.clone(), b.clone()], 10).await;
            let images = claim_as(&store, "gw", Pace::default(), 20, 3).await;
            assert_eq!(images.len(), 3);
            for (i, image) in images.iter().enumerate() {
                assert_eq!(image.position, 0);
                assert!(store.release(image.claim(), 501 + i as i64).await.unwrap());
            }
            store
                .enqueue(on_lane("rb", key.id, &b), &[], 30)
                .await
                .unwrap();
            let claimed = claim_as(&store, "gw", Pace::default(), 1_000, 3).await;
            let got: Vec<(&str, i64)> = claimed
                .iter()
                .map(|m| (m.request_id.as_str(), m.position))
                .collect();
            assert_eq!(got, [("rb", 0), ("r1", 0), ("r2", 0)]);
        }

        /// Paced claims give one pace key's messages slots a whole interval
        /// apart, take none past the horizon, and lanes sharing a pace key
        /// share its slots.
        #[tokio::test]
        async fn paced_claims_space_a_pace_keys_slots() {
            let Some((store, _guard)) = $open().await else {
                return;
            };
            let key = $crate::suite::new_key(&store, "k", None).await;
            let (one, two) = (account_lane("one"), session_lane("two"));
            for (i, lane) in [&one, &one, &one, &two].into_iter().enumerate() {
                store
                    .enqueue(on_lane(&format!("r{i}"), key.id, lane), &[], 1)
                    .await
                    .unwrap();
            }
            take(&store, "gw", &[one.clone(), two.clone()], 1).await;
            let pace = Pace {
                min_interval_ms: 1_000,
                jitter_ms: 0,
            };
            let first = claim_as(&store, "gw", pace, 100, 10).await;
            let mut slots: Vec<_> = first.iter().map(|m| (m.lane.clone(), m.send_at)).collect();
            slots.sort();
            // `one`: 100 and 1,100 (2,100 is past 100 + 1,500); `two`: 100.
            assert_eq!(
                slots,
                [(one.clone(), 100), (one.clone(), 1_100), (two.clone(), 100)]
            );
            assert!(
                claim_as(&store, "gw", pace, 500, 10).await.is_empty(),
                "2,100 > 2,000"
            );
            let third = claim_as(&store, "gw", pace, 700, 10).await;
            assert_eq!(third.len(), 1);
            assert_eq!(
                (third[0].lane.clone(), third[0].send_at),
                (one.clone(), 2_100)
            );
            // `two` paced with `one` from now on: its next slot is `one`'s.
            store.set_pace_key(&two, "uid:7").await.unwrap();
            store.set_pace_key(&one, "uid:7").await.unwrap();
            store
                .enqueue(on_lane("r9", key.id, &two), &[], 800)
                .await
                .unwrap();
            store
                .enqueue(on_lane("r10", key.id, &one), &[], 800)
                .await
                .unwrap();
            // The shared key starts from the later of the lanes' clocks:
            // `one`'s next slot, 3,100.
            assert!(claim_as(&store, "gw", pace, 900, 10).await.is_empty());
            let shared = claim_as(&store, "gw", pace, 2_000, 10).await;
            assert_eq!(
                shared.iter().map(|m| m.send_at).collect::<Vec<_>>(),
                [3_100]
            );
            let next = claim_as(&store, "gw", pace, 2_700, 10).await;
            assert_eq!(
                next.iter().map(|m| m.send_at).collect::<Vec<_>>(),
                [4_100],
                "one clock for both lanes"
            );
            // A send that went late pushes the clock: an interval after it.
            store
                .enqueue(on_lane("r11", key.id, &two), &[], 2_800)
                .await
                .unwrap();
            store.push_pacing(&two, 6_000).await.unwrap();
            store.push_pacing(&one, 5_000).await.unwrap();
            assert!(
                claim_as(&store, "gw", pace, 4_400, 10).await.is_empty(),
                "6,000 > 5,900"
            );
            let pushed = claim_as(&store, "gw", pace, 4_600, 10).await;
            assert_eq!(
                pushed.iter().map(|m| m.send_at).collect::<Vec<_>>(),
                [6_000]
            );
        }
    };
}
