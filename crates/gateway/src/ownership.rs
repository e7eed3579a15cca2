//! Which lanes (stored accounts, per-request sessions) this gateway delivers
//! and listens for. Gateways sharing a database announce themselves in its
//! heartbeat table and hold leases on lanes (see `tiktok_dm_store::lanes`):
//! only a lane's holder opens its TikTok session, listens for it and claims
//! its messages.
//!
//! Every tick (a third of `owner_lease`) the gateway beats,
//! reads the live gateways and every lane, and picks its share by
//! rendezvous hashing: a lane belongs to the live gateway with the highest
//! hash of (gateway, lane), so every gateway computes the same split and a
//! gateway that joins or dies moves only its own share. It takes the lanes
//! that are its own and free (never held, given up, or expired: a dead
//! gateway's after their lease), renews what it holds, and gives up at most
//! [`REBALANCE_STEP`] lanes a tick that now belong to another gateway, once
//! that one has been seen alive for two ticks: a joining gateway gets its
//! share slowly, not in one burst of reconnects. On SQLite the gateway is
//! alone and takes every lane (`force`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use sha2::Digest as _;
use tiktok_dm_store::{GatewayBeat, GatewayInfo, LaneLease, LeaseChange, Store};
use tokio::sync::{Notify, watch};

use crate::state::AppState;
use crate::{millis, now_ms};

/// The least time between two ticks, however often nudged.
const NUDGE_GAP: Duration = Duration::from_millis(500);

/// Lanes given up per tick, at most, when another gateway's share grows.
pub const REBALANCE_STEP: usize = 4;

/// The least time between two notices ([`want`]) of one lane.
const WANT_GAP: Duration = Duration::from_millis(100);

/// This gateway's identity and the leases it holds, shared by the API, the
/// outbox worker and the listeners.
#[derive(Debug)]
pub struct Ownership {
    id: String,
    started_at: i64,
    held: Mutex<HashMap<String, i64>>,
    gateways: Mutex<Vec<GatewayInfo>>,
    /// When each other gateway was first seen alive (ms).
    seen: Mutex<HashMap<String, i64>>,
    /// Asks for a tick now (a lane nobody holds was just given work).
    nudge: Notify,
    /// Tells the listeners' supervisor that lanes changed hands.
    changed: Notify,
    /// Held across a lease change and the record of its answer, so that an
    /// older answer never overwrites a newer one.
    changing: tokio::sync::Mutex<()>,
    /// Lanes another live gateway held at the last heartbeat, and until
    /// when: not adopted, nor announced, until then.
    elsewhere: Mutex<HashMap<String, i64>>,
    /// When each lane was last told of ([`want`]).
    wanted: Mutex<HashMap<String, std::time::Instant>>,
    /// Sends in flight per lane ([`Ownership::begin_send`]).
    sending: Mutex<HashMap<String, usize>>,
    /// Lanes being given up: out of `held`, still leased in the database
    /// until their sends in flight end; a lease change's answer does not
    /// bring them back.
    leaving: Mutex<HashSet<String>>,
    /// Told when a lane's last send in flight ends.
    sent: Notify,
}

impl Ownership {
    /// A new identity: `gw_` and 12 random hex digits (no host name or
    /// address: the id is shown in the API).
    pub fn new(now: i64) -> Self {
        let id = format!("gw_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        Self {
            id,
            started_at: now,
            held: Mutex::default(),
            gateways: Mutex::default(),
            seen: Mutex::default(),
            nudge: Notify::new(),
            changed: Notify::new(),
            changing: tokio::sync::Mutex::new(()),
            elsewhere: Mutex::default(),
            wanted: Mutex::default(),
            sending: Mutex::default(),
            leaving: Mutex::default(),
            sent: Notify::new(),
        }
    }

    /// This gateway's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this gateway holds `lane`'s lease at `now`.
    pub fn owns(&self, lane: &str, now: i64) -> bool {
        self.held.lock().is_ok_and(|h| running(&h, lane, now))
    }

    /// Starts a transmission for `lane` if this gateway holds its lease at
    /// `now`. Until the answer is dropped (after the send's answer and the
    /// pacing kept after it), a tick that gives the lane up does not let
    /// another gateway take it: it waits up to a sixth of `owner_lease`,
    /// then keeps the lane for a later tick. So the next holder finds the
    /// account's next slot where this send left it.
    pub fn begin_send(&self, lane: &str, now: i64) -> Option<Sending<'_>> {
        // Counted under the lock of the leases held, so a tick that removes
        // the lane sees every send that passed this check.
        let held = self.held.lock().ok()?;
        if !running(&held, lane, now) {
            return None;
        }
        *self
            .sending
            .lock()
            .ok()?
            .entry(lane.to_owned())
            .or_default() += 1;
        Some(Sending {
            own: self,
            lane: lane.to_owned(),
        })
    }

    /// Gives up `release` here (no send of them starts any more) and waits,
    /// up to `within`, for their sends in flight. A lane still sending then
    /// is kept: held again as it was and renewed (moved to `take`), to be
    /// given up at a later tick; or, when the gateway `stops`, left to run
    /// out. Answers what to take and what to release in the database.
    async fn let_go(
        &self,
        mut take: Vec<String>,
        release: Vec<String>,
        within: Duration,
        stops: bool,
    ) -> (Vec<String>, Vec<String>) {
        if release.is_empty() {
            return (take, release);
        }
        let mut was_held = HashMap::new();
        if let (Ok(mut held), Ok(mut leaving)) = (self.held.lock(), self.leaving.lock()) {
            for lane in &release {
                if let Some(until) = held.remove(lane) {
                    was_held.insert(lane.clone(), until);
                }
                leaving.insert(lane.clone());
            }
        }
        self.until_sent(&release, within).await;
        let (busy, release): (Vec<String>, Vec<String>) = match self.sending.lock() {
            Ok(sending) => release.into_iter().partition(|l| sending.contains_key(l)),
            Err(_) => (Vec::new(), release),
        };
        if let (Ok(mut held), Ok(mut leaving)) = (self.held.lock(), self.leaving.lock()) {
            for lane in &busy {
                leaving.remove(lane);
                match was_held.get(lane) {
                    Some(&until) if !stops => held.insert(lane.clone(), until),
                    _ => None,
                };
            }
        }
        if !stops {
            take.extend(busy);
        }
        (take, release)
    }

    /// `lanes` are no longer being given up (released, or kept).
    fn left<'a>(&self, lanes: impl Iterator<Item = &'a String>) {
        if let Ok(mut leaving) = self.leaving.lock() {
            for lane in lanes {
                leaving.remove(lane);
            }
        }
    }

    /// Waits, up to `within`, until no send of `lanes` is in flight.
    async fn until_sent(&self, lanes: &[String], within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.sent.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let busy = self
                .sending
                .lock()
                .map(|s| lanes.iter().any(|l| s.contains_key(l)))
                .unwrap_or(false);
            if !busy || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// How many lanes it holds.
    pub fn owned(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// The live gateways as the last heartbeat read them.
    pub fn gateways(&self) -> Vec<GatewayInfo> {
        self.gateways.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Whether another gateway held `lane` at the last heartbeat, on a lease
    /// still running at `now`.
    fn held_elsewhere(&self, lane: &str, now: i64) -> bool {
        self.elsewhere
            .lock()
            .map_or(true, |e| running(&e, lane, now))
    }

    /// Asks for a tick now.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Records the leases held now; answers the lanes gained and lost.
    fn set_held(&self, mut held: HashMap<String, i64>) -> (Vec<String>, Vec<String>) {
        let Ok(mut current) = self.held.lock() else {
            return (Vec::new(), Vec::new());
        };
        if let Ok(leaving) = self.leaving.lock() {
            held.retain(|lane, _| !leaving.contains(lane));
        }
        let gained = held
            .keys()
            .filter(|l| !current.contains_key(*l))
            .cloned()
            .collect();
        let lost = current
            .keys()
            .filter(|l| !held.contains_key(*l))
            .cloned()
            .collect();
        *current = held;
        (gained, lost)
    }

    /// Waits until the lanes held change (the listeners follow at once).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Whether `lane` has a lease in `leases` (lane: expiry) running at `now`.
fn running(leases: &HashMap<String, i64>, lane: &str, now: i64) -> bool {
    leases.get(lane).is_some_and(|&until| until > now)
}

/// A send in flight ([`Ownership::begin_send`]); ends when dropped.
#[derive(Debug)]
pub struct Sending<'a> {
    own: &'a Ownership,
    lane: String,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let Ok(mut sending) = self.own.sending.lock() else {
            return;
        };
        if let Some(n) = sending.get_mut(&self.lane) {
            *n -= 1;
            if *n == 0 {
                sending.remove(&self.lane);
                self.own.sent.notify_waiters();
            }
        }
    }
}

/// Takes `lane` at once when it is this gateway's to take (alone on the
/// database, or its rendezvous share) and nobody holds it: a new session's
/// first send is claimed here rather than at the next tick. Whether it
/// holds the lane afterwards.
pub async fn adopt<S: Store>(state: &AppState<S>, lane: &str) -> bool {
    let own = &state.ownership;
    let now = now_ms();
    if own.owns(lane, now) {
        return true;
    }
    let shared = state.store.is_shared();
    let live: Vec<String> = own.gateways().into_iter().map(|g| g.id).collect();
    // Shared: only its rendezvous share, once a heartbeat said who is alive,
    // and not while another gateway holds it (it gives it up at a tick).
    if shared && (own.held_elsewhere(lane, now) || target(lane, &live) != Some(own.id.as_str())) {
        return false;
    }
    let _changing = own.changing.lock().await;
    if own.owns(lane, now) {
        return true;
    }
    let change = LeaseChange {
        gateway: own.id.clone(),
        take: vec![lane.to_owned()],
        release: Vec::new(),
        force: !shared,
        lease_ms: millis(state.settings.owner_lease),
    };
    match state.store.change_leases(change, now).await {
        Ok(held) => {
            let (_, lost) =
                own.set_held(held.into_iter().map(|h| (h.lane, h.expires_at)).collect());
            let had = own.owns(lane, now);
            follow(state, &[], &lost);
            had
        }
        Err(e) => {
            tracing::warn!(error = %e, "ownership: a new lane could not be taken; the next tick tries");
            false
        }
    }
}

/// Tells the gateways sharing the database that `lane`, which nobody held
/// at the last heartbeat, has a message accepted here
/// ([`Store::want_lane`]): the gateway it belongs to takes it at once rather
/// than at its next tick (up to a third of `owner_lease`; a per-request
/// session's lane is held only while it has messages), and if another took
/// it meanwhile, that one claims at once. A lane another gateway holds is
/// not announced: its holder claims it within 200 ms anyway, and under load
/// half the sends of two gateways would each cost a notice and a claim (in
/// the load harness's two-gateway run, 165 notices in all). Once per lane
/// per `WANT_GAP` (100 ms), on a task of its own; a notice that fails only leaves
/// the wait as it was.
pub fn want<S: Store>(state: &AppState<S>, lane: &str) {
    if !state.store.is_shared() || state.ownership.held_elsewhere(lane, crate::now_ms()) {
        return;
    }
    let now = std::time::Instant::now();
    {
        let Ok(mut wanted) = state.ownership.wanted.lock() else {
            return;
        };
        if wanted.get(lane).is_some_and(|at| now - *at < WANT_GAP) {
            return;
        }
        wanted.retain(|_, at| now - *at < WANT_GAP);
        wanted.insert(lane.to_owned(), now);
    }
    let (store, lane) = (state.store.clone(), lane.to_owned());
    tokio::spawn(async move {
        if let Err(e) = store.want_lane(&lane).await {
            tracing::debug!(error = %e, "ownership: other gateways were not told of a lane's new message; its holder finds it at its next look");
        }
    });
}

/// The rendezvous score of `gateway` for `lane`.
fn score(gateway: &str, lane: &str) -> u64 {
    let digest = sha2::Sha256::new()
        .chain_update(gateway.as_bytes())
        .chain_update([0u8])
        .chain_update(lane.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The live gateway `lane` belongs to.
pub fn target<'a>(lane: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .max_by_key(|g| score(g, lane))
        .map(String::as_str)
}

/// What to take and give up this tick.
fn plan(
    me: &str,
    lanes: &[LaneLease],
    live: &[String],
    settled: &HashSet<String>,
    now: i64,
) -> (Vec<String>, Vec<String>) {
    let mut take = Vec::new();
    let mut release = Vec::new();
    for lease in lanes {
        let mine = lease.held_by(me, now);
        let belongs = target(&lease.lane, live) == Some(me);
        if belongs && (mine || !lease.held(now)) {
            take.push(lease.lane.clone());
        } else if mine {
            let owner = target(&lease.lane, live).unwrap_or(me);
            if release.len() < REBALANCE_STEP && settled.contains(owner) {
                release.push(lease.lane.clone());
            } else {
                take.push(lease.lane.clone());
            }
        }
    }
    (take, release)
}

/// Beats and moves leases until `stop`; then gives up every lease, so
/// another gateway takes over at once rather than after the lease.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let tick = state.settings.owner_lease / 3;
    loop {
        if *stop.borrow() {
            break;
        }
        let started = tokio::time::Instant::now();
        if let Err(e) = step(&state, false).await {
            tracing::warn!(error = %e, "ownership: the heartbeat failed; leases run out unless renewed");
        }
        tokio::select! {
            () = tokio::time::sleep_until(started + tick) => {}
            () = state.ownership.nudge.notified() => {
                // Nudges (a send to a lane this gateway does not hold) come
                // at most twice a second.
                tokio::time::sleep_until(started + NUDGE_GAP).await;
            }
            _ = stop.changed() => {}
        }
    }
    if let Err(e) = step(&state, true).await {
        tracing::warn!(error = %e, "ownership: leases could not be given up; they run out");
    }
}

/// One tick: beat, plan, take and give up; `leaving` gives up everything.
async fn step<S: Store>(state: &AppState<S>, leaving: bool) -> tiktok_dm_store::Result<()> {
    let own = &state.ownership;
    let lease_ms = millis(state.settings.owner_lease);
    let now = now_ms();
    let beat = GatewayBeat {
        id: own.id.clone(),
        started_at: own.started_at,
        expires_at: if leaving { now } else { now + lease_ms },
    };
    let seen = state.store.heartbeat(beat, now).await?;
    let live: Vec<String> = seen.gateways.iter().map(|g| g.id.clone()).collect();
    let (take, release) = choose(state, &seen, &live, leaving, now);
    if let Ok(mut e) = own.elsewhere.lock() {
        *e = seen
            .lanes
            .iter()
            .filter(|l| l.held(now) && l.owner.as_deref() != Some(own.id.as_str()))
            .map(|l| (l.lane.clone(), l.expires_at))
            .collect();
    }
    // Lanes given up stop here before the database lets another take them,
    // and their sends in flight end first (see `Ownership::begin_send`).
    let (take, release) = own
        .let_go(take, release, state.settings.owner_lease / 6, leaving)
        .await;
    let changing = own.changing.lock().await;
    let now = now_ms();
    let change = LeaseChange {
        gateway: own.id.clone(),
        take,
        release: release.clone(),
        force: !state.store.is_shared(),
        lease_ms,
    };
    let held = state.store.change_leases(change, now).await;
    let changed =
        held.map(|held| own.set_held(held.into_iter().map(|h| (h.lane, h.expires_at)).collect()));
    own.left(release.iter());
    drop(changing);
    let (gained, mut lost) = match changed {
        Ok(changed) => changed,
        Err(e) => {
            follow(state, &[], &release);
            return Err(e);
        }
    };
    lost.extend(release);
    if let Ok(mut g) = own.gateways.lock() {
        *g = seen.gateways;
    }
    state.metrics.set_ownership(live.len(), own.owned());
    follow(state, &gained, &lost);
    Ok(())
}

/// The lanes to take (or renew) and to give up this tick.
fn choose<S: Store>(
    state: &AppState<S>,
    seen: &tiktok_dm_store::Ownership,
    live: &[String],
    leaving: bool,
    now: i64,
) -> (Vec<String>, Vec<String>) {
    let own = &state.ownership;
    let all = || seen.lanes.iter().map(|l| l.lane.clone()).collect();
    if leaving {
        (Vec::new(), all())
    } else if state.store.is_shared() {
        let settled = settle(own, live, now, millis(state.settings.owner_lease) / 3);
        plan(&own.id, &seen.lanes, live, &settled, now)
    } else {
        (all(), Vec::new())
    }
}

/// What changes with the lanes held: the worker claims the lanes gained at
/// once; the sessions of lanes lost close (as soon as their sends in flight
/// end), so the new holder's socket is the account's only one; listeners
/// follow both at once.
fn follow<S: Store>(state: &AppState<S>, gained: &[String], lost: &[String]) {
    if !gained.is_empty() {
        tracing::info!(lanes = gained.len(), "ownership: lanes taken");
        state.wake.notify_one();
    }
    if !lost.is_empty() {
        tracing::info!(lanes = lost.len(), "ownership: lanes given up or lost");
        state.pool.retire(lost);
    }
    if !gained.is_empty() || !lost.is_empty() {
        state.ownership.changed.notify_one();
    }
}

/// The live gateways seen for two ticks (`tick_ms` each) or more.
fn settle(own: &Ownership, live: &[String], now: i64, tick_ms: i64) -> HashSet<String> {
    let Ok(mut seen) = own.seen.lock() else {
        return HashSet::new();
    };
    seen.retain(|id, _| live.contains(id));
    for id in live {
        seen.entry(id.clone()).or_insert(now);
    }
    seen.iter()
        .filter(|(id, since)| *id == &own.id || now - **since >= 2 * tick_ms)
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(lane: &str, owner: Option<&str>, expires_at: i64) -> LaneLease {
        LaneLease {
            lane: lane.into(),
            owner: owner.map(Into::into),
            expires_at,
            token: 1,
        }
    }

    #[tokio::test]
    async fn a_lane_given_up_waits_for_its_sends_in_flight() {
        let own = Ownership::new(0);
        own.set_held([("account:a".to_owned(), 100), ("account:b".to_owned(), 100)].into());
        assert!(own.begin_send("account:c", 50).is_none(), "not held");
        assert!(own.begin_send("account:a", 100).is_none(), "expired");
        let first = own.begin_send("account:a", 50).unwrap();
        let second = own.begin_send("account:a", 50).unwrap();
        let other = own.begin_send("account:b", 50).unwrap();
        let lanes = ["account:a".to_owned()];
        let short = Duration::from_millis(50);
        let waited = tokio::time::Instant::now();
        own.until_sent(&lanes, short).await;
        assert!(waited.elapsed() >= short, "two sends in flight");
        drop(first);
        let waited = tokio::time::Instant::now();
        own.until_sent(&lanes, short).await;
        assert!(waited.elapsed() >= short, "one send in flight");
        let long = Duration::from_secs(30);
        let (ended, ()) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(second);
                tokio::time::Instant::now()
            },
            own.until_sent(&lanes, long)
        );
        assert!(
            ended.elapsed() < Duration::from_secs(5),
            "woken when it ended"
        );
        // Another lane's send does not hold it up.
        let waited = tokio::time::Instant::now();
        own.until_sent(&lanes, long).await;
        assert!(waited.elapsed() < Duration::from_secs(5));
        drop(other);
    }

    #[tokio::test]
    async fn a_lane_still_sending_is_kept_for_a_later_tick() {
        let own = Ownership::new(0);
        let lanes = ["account:busy", "account:idle", "account:kept"];
        own.set_held(lanes.iter().map(|l| ((*l).to_owned(), 100)).collect());
        let sending = own.begin_send("account:busy", 50).unwrap();
        let release = vec!["account:busy".to_owned(), "account:idle".to_owned()];
        let (take, release) = own
            .let_go(
                vec!["account:kept".into()],
                release,
                Duration::from_millis(50),
                false,
            )
            .await;
        assert_eq!(take, ["account:kept", "account:busy"], "renewed");
        assert_eq!(release, ["account:idle"]);
        assert!(
            own.begin_send("account:idle", 50).is_none(),
            "no send starts"
        );
        assert!(own.leaving.lock().unwrap().contains("account:idle"));
        assert!(own.owns("account:busy", 50), "held again as it was");
        assert!(!own.leaving.lock().unwrap().contains("account:busy"));
        // The database's answer, before it released the idle lane, does not
        // bring it back; the busy one is held again.
        own.set_held(lanes.iter().map(|l| ((*l).to_owned(), 200)).collect());
        assert!(!own.owns("account:idle", 50));
        assert!(own.owns("account:busy", 50));
        drop(sending);
        own.left(release.iter());
        let (_, release) = own
            .let_go(
                Vec::new(),
                vec!["account:busy".into()],
                Duration::from_secs(30),
                false,
            )
            .await;
        assert_eq!(release, ["account:busy"], "given up once idle");
        // Stopping: a lane still sending is neither renewed nor held again.
        own.set_held([("account:kept".to_owned(), 200)].into());
        let sending = own.begin_send("account:kept", 50).unwrap();
        let (take, release) = own
            .let_go(
                Vec::new(),
                vec!["account:kept".into()],
                Duration::from_millis(50),
                true,
            )
            .await;
        assert!(take.is_empty() && release.is_empty(), "left to run out");
        assert!(!own.owns("account:kept", 50));
        drop(sending);
    }

    #[test]
    fn rendezvous_spreads_lanes_and_moves_only_a_leavers_share() {
        let two: Vec<String> = vec!["gw_a".into(), "gw_b".into()];
        let three: Vec<String> = vec!["gw_a".into(), "gw_b".into(), "gw_c".into()];
        let lanes: Vec<String> = (0..300).map(|i| format!("account:{i}")).collect();
        let a = lanes
            .iter()
            .filter(|l| target(l, &two) == Some("gw_a"))
            .count();
        assert!((100..200).contains(&a), "{a} of 300 to gw_a");
        for lane in &lanes {
            let before = target(lane, &three).unwrap();
            // gw_c leaves: only its lanes move.
            if before != "gw_c" {
                assert_eq!(target(lane, &two), Some(before));
            }
        }
    }

    #[test]
    fn a_gateway_takes_its_free_lanes_and_gives_others_back_slowly() {
        let live: Vec<String> = vec!["gw_a".into(), "gw_b".into()];
        let lanes: Vec<LaneLease> = (0..40)
            .map(|i| lease(&format!("account:{i}"), Some("gw_a"), 100))
            .collect();
        let settled: HashSet<String> = live.iter().cloned().collect();
        let (take, release) = plan("gw_a", &lanes, &live, &settled, 50);
        assert_eq!(release.len(), REBALANCE_STEP, "gives back a few a tick");
        assert_eq!(take.len() + release.len(), 40, "keeps the rest");
        for lane in &release {
            assert_eq!(target(lane, &live), Some("gw_b"));
        }
        // gw_b has just been seen: nothing goes to it yet.
        let only_a: HashSet<String> = ["gw_a".to_owned()].into();
        let (_, release) = plan("gw_a", &lanes, &live, &only_a, 50);
        assert!(release.is_empty());
        // gw_b takes its own lanes only once they are free or expired.
        let (take, _) = plan("gw_b", &lanes, &live, &settled, 50);
        assert!(take.is_empty(), "gw_a holds them until 100");
        let (take, _) = plan("gw_b", &lanes, &live, &settled, 100);
        assert!(!take.is_empty());
        assert!(take.iter().all(|l| target(l, &live) == Some("gw_b")));
    }
}
