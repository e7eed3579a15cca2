//! The shared behaviour every backend must have.

use tiktok_dm_store::{
    ApiKey, ClaimScope, Claimed, ClientMessageId, Content, DeliveryError, FailureCode, GatewayBeat,
    Kind, LeaseChange, MessageText, NewApiKey, NewMessage, NewRequest, OutboxMessage, Pace,
    QuotaWindow, RequestStatus, Store, Target, UsageTotals, session_lane,
};

pub fn hash(name: &str) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        h[i % 32] ^= b.wrapping_add(i as u8);
    }
    h[31] = name.len() as u8;
    h
}

pub async fn new_key<S: Store>(store: &S, name: &str, daily: Option<u32>) -> ApiKey {
    let new = NewApiKey {
        name: name.into(),
        prefix: format!("tdm_{name}"),
        key_hash: hash(name),
        daily_limit: daily,
        monthly_limit: None,
        accounts: Vec::new(),
        any_account: false,
    };
    store.create_api_key(new, 1_000).await.unwrap()
}

pub fn request(id: &str, key: i64, idempotency: Option<&str>, kinds: &[Kind]) -> NewRequest {
    NewRequest {
        id: id.into(),
        api_key_id: key,
        idempotency_key: idempotency.map(Into::into),
        request_hash: format!("hash-of-{id}"),
        account: None,
        session_sealed: Some(vec![1, 2, 3]),
        lane: session_lane("test"),
        target: Target::parse("0:1:1:2", "42").unwrap(),
        messages: kinds
            .iter()
            .enumerate()
            .map(|(i, k)| NewMessage {
                client_message_id: client_message_id(id, i),
                content: match k {
                    Kind::Text => Content::Text(MessageText::parse("hello").unwrap()),
                    Kind::Image => Content::Image(vec![0xff; 16]),
                },
            })
            .collect(),
        claim_first_ms: None,
    }
}

/// A client message id of its own for message `i` of request `id`.
pub fn client_message_id(id: &str, i: usize) -> ClientMessageId {
    let mut bytes = [0u8; 16];
    for (n, b) in id.bytes().chain([i as u8]).enumerate() {
        bytes[n % 16] ^= b.wrapping_mul(31).wrapping_add(n as u8);
    }
    bytes[15] ^= i as u8;
    ClientMessageId::from_random_bytes(bytes)
}

/// A text message.
pub fn text(s: &str) -> Content<Vec<u8>> {
    Content::Text(MessageText::parse(s).unwrap())
}

/// A failure as the client would report it.
pub fn failure(code: FailureCode) -> DeliveryError {
    DeliveryError::Send {
        code,
        message: format!("{code} happened"),
        tiktok_code: None,
    }
}

/// The gateway the suite's claims are made as.
pub const GATEWAY: &str = "gw-test";

/// A claim as [`GATEWAY`], unpaced, after it took every lane there is.
pub async fn claim_all<S: Store>(store: &S, now: i64, lease_ms: i64, max: u32) -> Vec<Claimed> {
    try_claim(store, now, lease_ms, max).await.unwrap()
}

/// [`claim_all`], its errors given back.
pub async fn try_claim<S: Store>(
    store: &S,
    now: i64,
    lease_ms: i64,
    max: u32,
) -> tiktok_dm_store::Result<Vec<Claimed>> {
    take_every_lane(store, GATEWAY, now).await;
    let scope = ClaimScope {
        gateway: GATEWAY.into(),
        lease_ms,
        pace: Pace::default(),
        horizon_ms: 0,
    };
    store.claim_due(now, &scope, max).await
}

/// Makes `gateway` the owner of every lane there is, for ages.
pub async fn take_every_lane<S: Store>(store: &S, gateway: &str, now: i64) {
    let beat = GatewayBeat {
        id: gateway.into(),
        started_at: now,
        expires_at: now + 60_000,
    };
    let lanes = store.heartbeat(beat, now).await.unwrap().lanes;
    let change = LeaseChange {
        gateway: gateway.into(),
        take: lanes.into_iter().map(|l| l.lane).collect(),
        release: Vec::new(),
        force: true,
        lease_ms: i64::MAX / 4,
    };
    store.change_leases(change, now).await.unwrap();
}

/// A claim whose rows all read back as messages.
pub async fn claim<S: Store>(store: &S, now: i64, lease_ms: i64, max: u32) -> Vec<OutboxMessage> {
    let claimed: Vec<Claimed> = claim_all(store, now, lease_ms, max).await;
    claimed
        .into_iter()
        .map(|c| c.expect("a message that reads back"))
        .collect()
}

/// The bytes of a message's image, when they came with the claim.
pub fn image_of(m: &OutboxMessage) -> Option<&[u8]> {
    m.content.image().and_then(|i| i.bytes.as_deref())
}

/// A request's status, read the way the gateway reads it.
pub async fn status_of<S: Store>(store: &S, request_id: &str, key: i64) -> Option<RequestStatus> {
    store
        .snapshot(Some(request_id), key, &[], 0, 0)
        .await
        .unwrap()
        .status
}

/// Messages counted in one window.
pub async fn used<S: Store>(store: &S, key: i64, window: &QuotaWindow) -> u64 {
    store
        .snapshot(None, key, std::slice::from_ref(window), 0, 0)
        .await
        .unwrap()
        .used[0]
}

/// A key's totals for the day and month starting at the given instants.
pub async fn totals<S: Store>(
    store: &S,
    key: i64,
    day_start: i64,
    month_start: i64,
) -> UsageTotals {
    store
        .snapshot(None, key, &[], day_start, month_start)
        .await
        .unwrap()
        .totals
}

pub fn daily(limit: u64) -> Vec<QuotaWindow> {
    vec![QuotaWindow {
        name: "daily",
        limit,
        start: 0,
        resets_at: 86_400_000,
    }]
}

/// Each outbox row as `request:position:text:image` (`-` for none), by
/// request and position: the query the suite reads the table with directly.
pub const OUTBOX_CONTENT: &str = "SELECT request_id || ':' || position || ':' || COALESCE(text, '-') || ':' || CASE WHEN image IS NULL THEN '-' ELSE 'image' END FROM outbox ORDER BY request_id, position";

/// Runs the suite on a backend: `$open` gives a fresh store and a guard that
/// keeps its database, or `None` when the backend is not there (PostgreSQL
/// without a server: the test is skipped); `$query(&guard, sql)` reads that
/// database directly (the first column of each row, as text), for what the
/// `Store` trait does not show, such as a message's stored text.
#[macro_export]
macro_rules! store_suite {
    ($open:path, $query:path) => {
        use tiktok_dm_store::{Enqueued, Kind, QuotaWindow, State, Store};
        use $crate::suite::{claim, daily, failure, hash, image_of, new_key, request, status_of, text, totals, used};

        #[tokio::test]
        async fn api_keys_are_found_by_hash_listed_and_revoked() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "ci", Some(10)).await;
            assert_eq!(store.api_key_by_hash(&hash("ci")).await.unwrap(), Some(key.clone()));
            assert_eq!(store.api_key_by_hash(&hash("nobody")).await.unwrap(), None);
            let same_name = tiktok_dm_store::NewApiKey {
                name: "ci".into(),
                prefix: "x".into(),
                key_hash: hash("other"),
                daily_limit: None,
                monthly_limit: None,
                accounts: Vec::new(),
                any_account: false,
            };
            let dup = store.create_api_key(same_name, 2).await.unwrap_err();
            assert!(dup.to_string().contains("already exists"), "{dup}");
            assert_eq!(store.list_api_keys().await.unwrap().len(), 1);
            assert!(store.revoke_api_key("ci", 5).await.unwrap());
            assert!(!store.revoke_api_key("ci", 6).await.unwrap(), "already revoked");
            assert_eq!(store.api_key_by_hash(&hash("ci")).await.unwrap().unwrap().revoked_at, Some(5));
        }

        #[tokio::test]
        async fn accounts_are_stored_sealed_replaced_listed_and_removed() {
            let Some((store, _guard)) = $open().await else { return; };
            store.put_account("shop", b"sealed-1", 1).await.unwrap();
            store.put_account("shop", b"sealed-2", 2).await.unwrap();
            assert_eq!(store.account("shop").await.unwrap().as_deref(), Some(&b"sealed-2"[..]));
            let listed = store.list_accounts().await.unwrap();
            assert_eq!((listed.len(), listed[0].created_at, listed[0].updated_at), (1, 1, 2));
            assert!(store.remove_account("shop").await.unwrap());
            assert_eq!(store.account("shop").await.unwrap(), None);
        }

        #[tokio::test]
        async fn an_idempotency_key_replays_the_first_request_and_refuses_other_content() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "k", None).await;
            let first = store.enqueue(request("r1", key.id, Some("same"), &[Kind::Text]), &[], 10).await.unwrap();
            assert!(matches!(&first, Enqueued::Accepted { request_id, claimed: None, .. } if request_id == "r1"), "{first:?}");
            let replay = store.enqueue(request("r1", key.id, Some("same"), &[Kind::Text]), &[], 11).await.unwrap();
            assert_eq!(replay, Enqueued::Replay { request_id: "r1".into() });
            let other = store.enqueue(request("r2", key.id, Some("same"), &[Kind::Text]), &[], 12).await.unwrap();
            assert_eq!(other, Enqueued::IdempotencyConflict);
            assert_eq!(store.outbox_depth().await.unwrap(), 1);
            // The same answers from the key alone, without enqueueing.
            let read = store.idempotent_repeat(key.id, "same", "hash-of-r1").await.unwrap();
            assert_eq!(read, Some(Enqueued::Replay { request_id: "r1".into() }));
            let read = store.idempotent_repeat(key.id, "same", "hash-of-r2").await.unwrap();
            assert_eq!(read, Some(Enqueued::IdempotencyConflict));
            assert_eq!(store.idempotent_repeat(key.id, "new", "hash-of-r1").await.unwrap(), None);
            let other_key = new_key(&store, "k2", None).await;
            assert_eq!(store.idempotent_repeat(other_key.id, "same", "hash-of-r1").await.unwrap(), None);
        }

        #[tokio::test]
        async fn concurrent_repeats_of_one_idempotency_key_accept_once() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "twins", None).await;
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let mut r = request(&format!("t{i}"), key.id, Some("same"), &[Kind::Text]);
                        r.request_hash = "same-content".into();
                        store.enqueue(r, &[], 10).await.unwrap()
                    })
                })
                .collect();
            let mut accepted = Vec::new();
            let mut replays = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    Enqueued::Accepted { request_id, .. } => accepted.push(request_id),
                    Enqueued::Replay { request_id } => replays.push(request_id),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(accepted.len(), 1, "{accepted:?}");
            assert_eq!(replays.len(), 19);
            assert!(replays.iter().all(|r| *r == accepted[0]));
            assert_eq!(store.outbox_depth().await.unwrap(), 1);
        }

        #[tokio::test]
        async fn a_revoked_or_unknown_key_is_refused_at_acceptance_and_nothing_is_written() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "gone", None).await;
            assert!(store.revoke_api_key("gone", 5).await.unwrap());
            let refused = store.enqueue(request("r1", key.id, Some("same"), &[Kind::Text]), &[], 10).await.unwrap();
            assert_eq!(refused, Enqueued::KeyRevoked);
            let unknown = store.enqueue(request("r2", key.id + 100, None, &[Kind::Text]), &[], 11).await.unwrap();
            assert_eq!(unknown, Enqueued::KeyRevoked);
            assert_eq!(store.outbox_depth().await.unwrap(), 0);
            assert_eq!(status_of(&store, "r1", key.id).await, None);
        }

        #[tokio::test]
        async fn quota_counts_messages_and_failed_ones_give_their_reservation_back() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "q", Some(3)).await;
            let ok = store.enqueue(request("a", key.id, None, &[Kind::Image, Kind::Text]), &daily(3), 10).await.unwrap();
            assert!(matches!(ok, Enqueued::Accepted { .. }));
            let over = store.enqueue(request("b", key.id, None, &[Kind::Image, Kind::Text]), &daily(3), 11).await.unwrap();
            assert_eq!(over, Enqueued::QuotaExceeded { window: "daily", limit: 3, used: 2, resets_at: 86_400_000 });
            // The image fails for good: both messages of "a" stop counting.
            let claimed = claim(&store, 20, 60_000, 10).await;
            assert_eq!(claimed.len(), 1, "the text waits for its image");
            store.finish(claimed[0].claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::UpstreamError), 21, None).await.unwrap();
            assert_eq!(used(&store, key.id, &daily(3)[0]).await, 0);
            let status = status_of(&store, "a", key.id).await.unwrap();
            assert_eq!(status.messages[1].state, State::Failed, "the caption is not attempted");
            let again = store.enqueue(request("c", key.id, None, &[Kind::Image, Kind::Text]), &daily(3), 22).await.unwrap();
            assert!(matches!(again, Enqueued::Accepted { .. }));
        }

        #[tokio::test]
        async fn usage_totals_count_by_window_with_image_bytes_and_skip_failed() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "u", None).await;
            let other = new_key(&store, "other", None).await;
            let day = 86_400_000;
            // January 1970, then February (which starts on day 31).
            store.enqueue(request("old", key.id, None, &[Kind::Text]), &[], 5 * day).await.unwrap();
            store.enqueue(request("month", key.id, None, &[Kind::Image]), &[], 40 * day).await.unwrap();
            store.enqueue(request("today", key.id, None, &[Kind::Image, Kind::Text]), &[], 50 * day + 5).await.unwrap();
            store.enqueue(request("theirs", other.id, None, &[Kind::Text]), &[], 50 * day + 6).await.unwrap();
            let t = totals(&store, key.id, 50 * day, 31 * day).await;
            assert_eq!((t.today, t.month, t.total, t.image_bytes), (2, 3, 4, 32));
            let january = totals(&store, key.id, 5 * day, 0).await;
            assert_eq!((january.today, january.month), (1, 1));
            // "old" fails: it leaves every total.
            let claimed = claim(&store, 50 * day + 10, 60_000, 1).await;
            assert_eq!(claimed[0].request_id, "old");
            store.finish(claimed[0].claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::UpstreamError), 50 * day + 11, None).await.unwrap();
            let t = totals(&store, key.id, 50 * day, 31 * day).await;
            assert_eq!((t.today, t.month, t.total, t.image_bytes), (2, 3, 3, 32));
            assert_eq!(totals(&store, key.id, 5 * day, 0).await.month, 0);
            assert_eq!(totals(&store, 999, 0, 0).await, Default::default());
        }

        #[tokio::test]
        async fn a_released_message_comes_back_later_without_counting_an_attempt() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "r", None).await;
            store.enqueue(request("p", key.id, None, &[Kind::Text]), &[], 10).await.unwrap();
            let first = claim(&store, 20, 60_000, 5).await;
            assert_eq!(first[0].attempts, 1);
            store.release(first[0].claim(), 500).await.unwrap();
            assert!(claim(&store, 499, 60_000, 5).await.is_empty(), "not before its time");
            let again = claim(&store, 500, 60_000, 5).await;
            assert_eq!((again[0].id, again[0].attempts), (first[0].id, 1));
            assert_eq!(store.outbox_depth().await.unwrap(), 1);
        }

        /// An acceptance returns what a read right after it would give, so the
        /// gateway can answer without that read.
        #[tokio::test]
        async fn an_acceptance_returns_the_snapshot_a_read_would_give() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "s", Some(100)).await;
            let monthly = QuotaWindow { name: "monthly", limit: 500, start: 0, resets_at: 31 * 86_400_000 };
            let windows = [daily(100)[0].clone(), monthly];
            let mut at = 10;
            for (id, kinds, claim) in [
                ("t", &[Kind::Text][..], None),
                ("it", &[Kind::Image, Kind::Text][..], Some(30_000)),
                ("i", &[Kind::Image][..], Some(30_000)),
            ] {
                at += 1;
                let mut r = request(id, key.id, None, kinds);
                r.claim_first_ms = claim;
                let Enqueued::Accepted { snapshot, .. } = store.enqueue(r, &windows, at).await.unwrap() else {
                    panic!("{id} not accepted");
                };
                let read = store.snapshot(Some(id), key.id, &windows, 0, 0).await.unwrap();
                assert_eq!(*snapshot, read, "{id}");
            }
            let Enqueued::Accepted { snapshot, .. } = store.enqueue(request("last", key.id, None, &[Kind::Text]), &windows, 20).await.unwrap() else {
                panic!("not accepted");
            };
            assert_eq!(snapshot.used, [5, 5]);
            assert_eq!((snapshot.totals.today, snapshot.totals.total, snapshot.totals.image_bytes), (5, 5, 32));
        }

        #[tokio::test]
        async fn the_first_message_can_be_claimed_with_the_enqueue() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "fast", None).await;
            let mut r = request("f", key.id, None, &[Kind::Image, Kind::Text]);
            r.claim_first_ms = Some(30_000);
            let Enqueued::Accepted { claimed: Some(first), .. } = store.enqueue(r, &[], 10).await.unwrap() else {
                panic!("the image comes back claimed");
            };
            assert_eq!((first.position, first.kind(), first.attempts), (0, Kind::Image, 1));
            assert!(first.followed, "its caption waits for it");
            assert_eq!(image_of(&first), Some(&[0xff; 16][..]));
            assert_eq!(first.image_bytes(), 16);
            assert_eq!(first.session_sealed.as_deref(), Some(&[1, 2, 3][..]));
            // Leased: nobody else gets it, and the caption waits for it.
            assert!(claim(&store, 20, 30_000, 10).await.is_empty());
            // A renewed lease holds it past its first end.
            assert!(store.renew(first.claim(), 50_000).await.unwrap());
            assert!(claim(&store, 30_011, 30_000, 10).await.is_empty());
            // Its lease runs out like any claim's (a crash between the two).
            let again = claim(&store, 50_001, 30_000, 10).await;
            assert_eq!((again.len(), again[0].id, again[0].attempts), (1, first.id, 2));
            // Once it is no longer being delivered, there is no lease to renew.
            store.mark_sent(first.claim(), "7002", "ws", 50_100, None).await.unwrap();
            assert!(!store.renew(first.claim(), 90_000).await.unwrap());
        }

        #[tokio::test]
        async fn concurrent_requests_never_exceed_a_limit() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "burst", Some(50)).await;
            let mut tasks = Vec::new();
            for i in 0..200 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store.enqueue(request(&format!("r{i}"), key.id, None, &[Kind::Text]), &daily(50), 10).await.unwrap()
                }));
            }
            let mut accepted = 0;
            for t in tasks {
                if matches!(t.await.unwrap(), Enqueued::Accepted { .. }) {
                    accepted += 1;
                }
            }
            assert_eq!(accepted, 50);
            assert_eq!(used(&store, key.id, &daily(50)[0]).await, 50);
        }

        #[tokio::test]
        async fn claims_are_leased_in_order_and_sessions_are_wiped_when_final() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "w", None).await;
            store.enqueue(request("r", key.id, None, &[Kind::Image, Kind::Text]), &[], 10).await.unwrap();
            assert!(status_of(&store, "r", key.id).await.unwrap().holds_session);
            let first = claim(&store, 20, 1_000, 10).await;
            assert_eq!((first.len(), first[0].kind(), first[0].attempts), (1, Kind::Image, 1));
            // A claim carries the image's size; the bytes are read when it goes.
            assert_eq!((image_of(&first[0]), first[0].image_bytes()), (None, 16));
            assert_eq!(store.image(first[0].id).await.unwrap().as_deref(), Some(&[0xff; 16][..]));
            assert_eq!(first[0].session_sealed.as_deref(), Some(&[1u8, 2, 3][..]));
            assert!(claim(&store, 500, 1_000, 10).await.is_empty(), "leased, and the text waits");
            // The worker died: after the lease the image is due again, same client id.
            let again = claim(&store, 1_100, 1_000, 10).await;
            assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
            assert_eq!(again[0].client_message_id, first[0].client_message_id);
            store.mark_sent(again[0].claim(), "7000", "ws", 1_200, None).await.unwrap();
            assert_eq!(store.image(again[0].id).await.unwrap(), None, "dropped once sent");
            let text = claim(&store, 1_300, 1_000, 10).await;
            assert_eq!((text[0].kind(), text[0].image_bytes()), (Kind::Text, 0));
            assert!(first[0].followed && !text[0].followed, "the image is followed, the text is last");
            assert_eq!(store.image(text[0].id).await.unwrap(), None);
            assert_eq!(store.image(text[0].id + 1_000).await.unwrap(), None, "no such row");
            store.reschedule(text[0].claim(), 5_000, true, &failure(tiktok_dm_store::FailureCode::UpstreamError), 1_400).await.unwrap();
            assert!(claim(&store, 4_000, 1_000, 10).await.is_empty(), "not before its time");
            let retry = claim(&store, 5_000, 1_000, 10).await;
            store.mark_sent(retry[0].claim(), "7001", "http", 5_100, None).await.unwrap();
            let status = status_of(&store, "r", key.id).await.unwrap();
            let states: Vec<State> = status.messages.iter().map(|m| m.state).collect();
            assert_eq!(states, [State::Sent, State::Sent]);
            assert_eq!(status.messages[1].server_message_id.as_deref(), Some("7001"));
            assert_eq!(store.outbox_depth().await.unwrap(), 0);
            assert!(!status.holds_session, "the per-request session is wiped once every message is final");
            assert!(status_of(&store, "r", key.id + 1).await.is_none(), "another key cannot see it");
        }

        /// A key keeps the accounts it may send as, in order (the first is
        /// its default), and whether it may send as any.
        #[tokio::test]
        async fn a_keys_accounts_are_kept_in_order() {
            let Some((store, _guard)) = $open().await else { return; };
            let new = tiktok_dm_store::NewApiKey {
                name: "two".into(),
                prefix: "tdm_two".into(),
                key_hash: hash("two"),
                daily_limit: None,
                monthly_limit: None,
                accounts: vec!["shopB".into(), "shopA".into()],
                any_account: false,
            };
            let created = store.create_api_key(new, 1).await.unwrap();
            let read = store.api_key_by_hash(&hash("two")).await.unwrap().unwrap();
            assert_eq!(read, created);
            assert_eq!((read.account.as_deref(), read.accounts.clone(), read.any_account), (Some("shopB"), vec!["shopB".to_owned(), "shopA".to_owned()], false));
            assert!(read.may_send_as("shopA") && !read.may_send_as("shopC"));
            let unbound = new_key(&store, "none", None).await;
            assert!(unbound.accounts.is_empty() && !unbound.may_send_as("shopA"));
            assert_eq!(store.list_api_keys().await.unwrap()[1], read);
        }

        /// Every claim counts as an attempt (the backoff grows with them);
        /// only attempts that reached TikTok count as transmissions, which
        /// the gateway's `max_attempts` limits.
        #[tokio::test]
        async fn only_attempts_that_reached_tiktok_count_as_transmissions() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "counted", None).await;
            store.enqueue(request("t", key.id, None, &[Kind::Text]), &[], 10).await.unwrap();
            let first = claim(&store, 20, 1_000, 10).await.remove(0);
            assert_eq!((first.attempts, first.transmissions, first.accepted_at), (1, 0, 10));
            let down = failure(tiktok_dm_store::FailureCode::ConnectionFailed);
            assert!(store.reschedule(first.claim(), 100, false, &down, 30).await.unwrap());
            let second = claim(&store, 200, 1_000, 10).await.remove(0);
            assert_eq!((second.attempts, second.transmissions), (2, 0));
            let lost = failure(tiktok_dm_store::FailureCode::OutcomeUnknown);
            assert!(store.reschedule(second.claim(), 300, true, &lost, 210).await.unwrap());
            let third = claim(&store, 400, 1_000, 10).await.remove(0);
            assert_eq!((third.attempts, third.transmissions), (3, 1));
        }

        /// A worker whose lease ran out, and whose message was claimed again,
        /// changes nothing with its writes: it cannot turn a sent message back
        /// to accepted (a third send), mark a failed (refunded) one sent,
        /// give it back, end it, or renew its lease.
        #[tokio::test]
        async fn a_stale_claims_writes_change_nothing() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "fenced", Some(10)).await;
            store.enqueue(request("s", key.id, None, &[Kind::Text]), &daily(10), 10).await.unwrap();
            let stale = claim(&store, 20, 1_000, 10).await.remove(0);
            let fresh = claim(&store, 1_100, 1_000, 10).await.remove(0);
            assert_eq!(fresh.id, stale.id);
            assert_ne!(fresh.token, stale.token, "each claim has its own token");
            assert!(!store.renew(stale.claim(), 9_000).await.unwrap());
            assert!(store.mark_sent(fresh.claim(), "7001", "ws", 1_200, None).await.unwrap().applied);
            assert!(!store.reschedule(stale.claim(), 1_300, true, &failure(tiktok_dm_store::FailureCode::UpstreamError), 1_300).await.unwrap());
            assert!(!store.release(stale.claim(), 1_300).await.unwrap());
            assert!(!store.finish(stale.claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::UpstreamError), 1_300, None).await.unwrap().applied);
            let status = status_of(&store, "s", key.id).await.unwrap();
            assert_eq!(status.messages[0].state, State::Sent, "still sent");
            assert!(claim(&store, 5_000, 1_000, 10).await.is_empty(), "not due again");

            store.enqueue(request("f", key.id, None, &[Kind::Text]), &daily(10), 6_000).await.unwrap();
            let stale = claim(&store, 6_000, 1_000, 10).await.remove(0);
            let fresh = claim(&store, 7_100, 1_000, 10).await.remove(0);
            assert!(store.finish(fresh.claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::RequestRejected), 7_200, None).await.unwrap().applied);
            assert!(!store.mark_sent(stale.claim(), "7002", "ws", 7_300, None).await.unwrap().applied);
            let status = status_of(&store, "f", key.id).await.unwrap();
            assert_eq!(status.messages[0].state, State::Failed, "still failed");
            assert_eq!(used(&store, key.id, &daily(10)[0]).await, 1, "its quota stays given back");
        }

        /// A request's inbox type (3: a message request) goes with each of
        /// its messages.
        #[tokio::test]
        async fn a_claimed_message_keeps_its_request_s_inbox_type() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "inbox", None).await;
            let mut r = request("m", key.id, None, &[Kind::Image, Kind::Text]);
            r.target.inbox_type = 3;
            store.enqueue(r, &[], 10).await.unwrap();
            store.enqueue(request("d", key.id, None, &[Kind::Text]), &[], 10).await.unwrap();
            let claimed = claim(&store, 20, 1_000, 10).await;
            let types: Vec<(String, i32)> = claimed.iter().map(|m| (m.request_id.clone(), m.target.inbox_type)).collect();
            assert_eq!(types, [("m".to_owned(), 3), ("d".to_owned(), 0)]);
        }

        /// An outcome and its event are stored together: the event is
        /// logged (with a cursor) only when the outcome is, never for a stale
        /// claim, and once however often it is recorded again.
        #[tokio::test]
        async fn an_outcome_is_logged_with_its_event_or_not_at_all() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "logged", None).await;
            let outcome = |kind: &str| tiktok_dm_store::NewEvent {
                account: "shop".into(),
                event_type: kind.into(),
                conversation_id: Some("0:1:1:2".into()),
                dedupe_key: Some(format!("{kind}:s:0")),
                payload: "{}".into(),
                occurred_at: 1,
            };
            store.enqueue(request("s", key.id, None, &[Kind::Text]), &[], 10).await.unwrap();
            let stale = claim(&store, 20, 1_000, 10).await.remove(0);
            let fresh = claim(&store, 1_100, 1_000, 10).await.remove(0);
            let refused = store.mark_sent(stale.claim(), "7001", "ws", 1_150, Some(outcome("message.sent"))).await.unwrap();
            assert_eq!(refused, tiktok_dm_store::Recorded { applied: false, event: None });
            let failed = failure(tiktok_dm_store::FailureCode::UpstreamError);
            let refused = store.finish(stale.claim(), State::Failed, &failed, 1_150, Some(outcome("message.failed"))).await.unwrap();
            assert_eq!(refused, tiktok_dm_store::Recorded { applied: false, event: None });
            assert_eq!(store.latest_event_cursor().await.unwrap(), 0, "no event for a write that did not apply");

            let sent = store.mark_sent(fresh.claim(), "7001", "ws", 1_200, Some(outcome("message.sent"))).await.unwrap();
            assert!(sent.applied);
            let cursor = sent.event.and_then(|a| a.cursor()).expect("logged");
            assert_eq!(store.latest_event_cursor().await.unwrap(), cursor);
            let again = store.mark_sent(fresh.claim(), "7001", "ws", 1_300, Some(outcome("message.sent"))).await.unwrap();
            assert_eq!(again, tiktok_dm_store::Recorded { applied: false, event: None });

            store.enqueue(request("f", key.id, None, &[Kind::Text]), &[], 2_000).await.unwrap();
            let m = claim(&store, 2_000, 1_000, 10).await.remove(0);
            let ended = store.finish(m.claim(), State::Failed, &failed, 2_100, Some(outcome("message.failed"))).await.unwrap();
            assert!(ended.applied);
            let ended_at = ended.event.and_then(|a| a.cursor()).expect("logged");
            assert!(ended_at > cursor);
            let filter = tiktok_dm_store::EventFilter::default();
            let logged: Vec<String> = store.events_after(0, &filter, 10).await.unwrap().into_iter().map(|e| e.event_type).collect();
            assert_eq!(logged, ["message.sent", "message.failed"]);
        }

        /// PostgreSQL's text cannot hold U+0000: both backends refuse to write
        /// it, clearly, and find nothing by it, rather than fail in the database.
        #[tokio::test]
        async fn a_nul_character_is_refused_in_writes_and_finds_nothing_in_lookups() {
            let Some((store, _guard)) = $open().await else { return; };
            let key = new_key(&store, "nul", None).await;
            let refused = |e: tiktok_dm_store::Error| {
                assert!(matches!(e, tiktok_dm_store::Error::Invalid(_)), "{e}");
                e.to_string()
            };
            let mut texted = request("t", key.id, None, &[Kind::Text]);
            texted.messages[0].content = text("a\0b");
            let message = refused(store.enqueue(texted, &[], 10).await.unwrap_err());
            assert!(message.contains("message text") && message.contains("U+0000"), "{message}");
            refused(store.enqueue(request("i", key.id, Some("k\0"), &[Kind::Text]), &[], 10).await.unwrap_err());
            let mut bound = request("a", key.id, None, &[Kind::Text]);
            bound.account = Some("sh\0p".into());
            refused(store.enqueue(bound, &[], 10).await.unwrap_err());
            refused(store.put_account("sh\0p", b"sealed", 1).await.unwrap_err());
            let named = tiktok_dm_store::NewApiKey { name: "n\0".into(), prefix: "tdm_n".into(), key_hash: hash("n0"), daily_limit: None, monthly_limit: None, accounts: vec!["sh\0p".into()], any_account: false };
            refused(store.create_api_key(named, 1).await.unwrap_err());
            assert_eq!(store.outbox_depth().await.unwrap(), 0, "nothing was written");
            assert_eq!(store.list_api_keys().await.unwrap().len(), 1);

            assert_eq!(store.account("sh\0p").await.unwrap(), None);
            assert!(!store.remove_account("sh\0p").await.unwrap());
            assert!(!store.revoke_api_key("nul\0", 2).await.unwrap());
            assert!(status_of(&store, "t\0", key.id).await.is_none());
        }
        /// A message's content goes when it is final, whatever the outcome
        /// (nothing reads it again); its ids and outcome stay. A message
        /// still to deliver keeps it, for its retries.
        #[tokio::test]
        async fn a_final_message_keeps_its_ids_and_outcome_but_not_its_content() {
            let Some((store, guard)) = $open().await else { return; };
            let key = new_key(&store, "c", None).await;
            store.enqueue(request("a_sent", key.id, None, &[Kind::Image, Kind::Text]), &[], 10).await.unwrap();
            let image = claim(&store, 20, 60_000, 10).await.remove(0);
            store.mark_sent(image.claim(), "7000", "ws", 30, None).await.unwrap();
            assert_eq!($query(&guard, $crate::suite::OUTBOX_CONTENT).await, ["a_sent:0:-:-", "a_sent:1:hello:-"], "the caption waits with its text");
            let caption = claim(&store, 40, 60_000, 10).await.remove(0);
            store.mark_sent(caption.claim(), "7001", "http", 50, None).await.unwrap();
            store.enqueue(request("b_failed", key.id, None, &[Kind::Text, Kind::Image]), &[], 60).await.unwrap();
            let failed = claim(&store, 70, 60_000, 10).await.remove(0);
            store.finish(failed.claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::RequestRejected), 80, None).await.unwrap();
            store.enqueue(request("c_unknown", key.id, None, &[Kind::Text]), &[], 90).await.unwrap();
            let unknown = claim(&store, 100, 60_000, 10).await.remove(0);
            store.finish(unknown.claim(), State::Unknown, &failure(tiktok_dm_store::FailureCode::OutcomeUnknown), 110, None).await.unwrap();
            store.enqueue(request("d_pending", key.id, None, &[Kind::Text, Kind::Image]), &[], 120).await.unwrap();
            assert_eq!(
                $query(&guard, $crate::suite::OUTBOX_CONTENT).await,
                ["a_sent:0:-:-", "a_sent:1:-:-", "b_failed:0:-:-", "b_failed:1:-:-", "c_unknown:0:-:-", "d_pending:0:hello:-", "d_pending:1:-:image"]
            );
            let sent = status_of(&store, "a_sent", key.id).await.unwrap();
            let kept: Vec<_> = sent.messages.iter().map(|m| (m.state, m.server_message_id.clone(), m.client_message_id.clone())).collect();
            assert_eq!(kept, [(State::Sent, Some("7000".into()), image.client_message_id.clone()), (State::Sent, Some("7001".into()), caption.client_message_id.clone())]);
            let failed = status_of(&store, "b_failed", key.id).await.unwrap();
            assert_eq!((failed.messages[0].state, failed.messages[1].state), (State::Failed, State::Failed));
            assert!(failed.messages[0].error.is_some() && failed.messages[1].error.is_some());
            assert_eq!(status_of(&store, "c_unknown", key.id).await.unwrap().messages[0].state, State::Unknown);
        }

        /// Retention deletes a request once its every message ended before
        /// the cutoff, with its messages, in batches, oldest first; a request
        /// with a message pending stays however old, and so does one that
        /// ended after the cutoff. Day and month counters of periods that
        /// ended before it go; the current ones and the all-time one stay.
        #[tokio::test]
        async fn retention_deletes_requests_ended_before_the_cutoff_and_old_counters() {
            let Some((store, guard)) = $open().await else { return; };
            let key = new_key(&store, "old", None).await;
            let day = 86_400_000;
            store.enqueue(request("old_sent", key.id, Some("again"), &[Kind::Text]), &[], 10 * day).await.unwrap();
            let m = claim(&store, 10 * day, 60_000, 1).await.remove(0);
            store.mark_sent(m.claim(), "7000", "ws", 10 * day + 1, None).await.unwrap();
            store.enqueue(request("old_failed", key.id, None, &[Kind::Text, Kind::Text]), &[], 10 * day + 2).await.unwrap();
            let m = claim(&store, 10 * day + 2, 60_000, 1).await.remove(0);
            store.finish(m.claim(), State::Failed, &failure(tiktok_dm_store::FailureCode::RequestRejected), 10 * day + 3, None).await.unwrap();
            store.enqueue(request("old_ended_late", key.id, None, &[Kind::Text]), &[], 10 * day + 4).await.unwrap();
            store.enqueue(request("recent", key.id, None, &[Kind::Text]), &[], 45 * day).await.unwrap();
            for at in [45 * day + 1, 45 * day + 2] {
                let m = claim(&store, at, 60_000, 1).await.remove(0);
                store.mark_sent(m.claim(), "7001", "ws", at, None).await.unwrap();
            }
            store.enqueue(request("old_pending", key.id, None, &[Kind::Text]), &[], 10 * day + 5).await.unwrap();
            let before = 40 * day;

            let first = store.delete_expired(before, 1).await.unwrap();
            assert_eq!((first.requests, first.counters), (1, 2), "one request, day 10 and January: {first:?}");
            let rest = store.delete_expired(before, 500).await.unwrap();
            assert_eq!(first.messages + rest.messages, 3);
            assert_eq!((rest.requests, rest.counters), (1, 0), "{rest:?}");
            assert_eq!(store.delete_expired(before, 500).await.unwrap(), tiktok_dm_store::Expired::default());

            for (id, kept) in [("old_sent", false), ("old_failed", false), ("old_ended_late", true), ("recent", true), ("old_pending", true)] {
                assert_eq!(status_of(&store, id, key.id).await.is_some(), kept, "{id}");
            }
            assert_eq!(
                $query(&guard, $crate::suite::OUTBOX_CONTENT).await,
                ["old_ended_late:0:-:-", "old_pending:0:hello:-", "recent:0:-:-"]
            );
            let january = totals(&store, key.id, 10 * day, 0).await;
            assert_eq!((january.today, january.month, january.total), (0, 0, 4), "day 10 and January are gone, all time stays");
            let february = totals(&store, key.id, 45 * day, 31 * day).await;
            assert_eq!((february.today, february.month), (1, 1));
            // The idempotency key of a deleted request is free again.
            let again = store.enqueue(request("later", key.id, Some("again"), &[Kind::Text]), &[], 70 * day).await.unwrap();
            assert!(matches!(again, Enqueued::Accepted { .. }), "{again:?}");
        }

        /// The key check value is stored once: the first value stays, and
        /// processes storing theirs at once all get the same one back.
        #[tokio::test]
        async fn the_key_check_value_is_stored_once_and_kept() {
            let Some((store, _guard)) = $open().await else { return; };
            assert_eq!(store.key_check().await.unwrap(), None);
            let (a, b) = tokio::join!(store.put_key_check(b"first"), store.put_key_check(b"second"));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a, b, "both see the one stored");
            assert!(a == b"first" || a == b"second");
            assert_eq!(store.put_key_check(b"third").await.unwrap(), a);
            assert_eq!(store.key_check().await.unwrap(), Some(a));
        }
    };
}
