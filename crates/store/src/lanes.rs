//! Scale-out (issue 19): gateways sharing one database, and who delivers
//! what. A lane is what one gateway delivers for at a time: a stored
//! account, or a per-request session. A gateway announces itself with
//! heartbeats, holds leases on lanes (an owner, an expiry and a fencing
//! token raised at every change of owner), and claims only the messages of
//! lanes it holds. Pacing is kept here too, per pace key (a lane, or the
//! TikTok uid several lanes share), so it holds whichever gateway sends.

/// The lane of stored account `name`.
pub fn account_lane(name: &str) -> String {
    format!("account:{name}")
}

/// The lane of a per-request session, from a digest of it (hex; never the
/// session itself).
pub fn session_lane(digest_hex: &str) -> String {
    format!("session:{digest_hex}")
}

/// A gateway's heartbeat (`$1` id, `$2` start, `$3` now, `$4` expiry). Both backends' (SQLite's
/// through `sqlite_sql`).
pub(crate) const UPSERT_GATEWAY: &str = "INSERT INTO gateways (id, started_at, heartbeat_at, expires_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at";

/// The gateways alive at `$1`, with the lanes each holds and their depth. Both backends' (SQLite's
/// through `sqlite_sql`).
pub(crate) const LIVE_GATEWAYS: &str = "SELECT g.id, g.started_at, g.heartbeat_at, g.expires_at,
     (SELECT COUNT(*) FROM lane_leases l WHERE l.owner = g.id AND l.expires_at > $1),
     (SELECT COUNT(*) FROM outbox o JOIN lane_leases l ON l.lane = o.lane
     WHERE o.state IN ('accepted', 'sending') AND l.owner = g.id AND l.expires_at > $1)
     FROM gateways g WHERE g.expires_at > $1 ORDER BY g.id";

/// Every lane (each stored account's, each with messages to deliver) and
/// its lease. Both backends' (SQLite's
/// through `sqlite_sql`).
pub(crate) const ALL_LANES: &str =
    "SELECT n.lane, l.owner, COALESCE(l.expires_at, 0), COALESCE(l.token, 0) FROM (
     SELECT 'account:' || name AS lane FROM accounts
     UNION SELECT lane FROM outbox WHERE state IN ('accepted', 'sending')
     ) n LEFT JOIN lane_leases l ON l.lane = n.lane ORDER BY n.lane";

/// The leases `$1` holds at `$2`. Both backends' (SQLite's
/// through `sqlite_sql`).
pub(crate) const HELD_LANES: &str = "SELECT lane, token, expires_at FROM lane_leases WHERE owner = $1 AND expires_at > $2 ORDER BY lane";

/// Carries a lane's next send time over to its new pace key (`$1` lane,
/// `$2` new key), before the key changes.
pub(crate) const CARRY_PACE: &str = "INSERT INTO pacing (key, next_send_at)
     SELECT $2, next_send_at FROM pacing
     WHERE key = COALESCE((SELECT pace_key FROM lane_leases WHERE lane = $1), $1)
     ON CONFLICT (key) DO UPDATE SET next_send_at = GREATEST(pacing.next_send_at, excluded.next_send_at)";

/// Sets `$1` lane's pace key to `$2`.
pub(crate) const SET_PACE_KEY: &str = "INSERT INTO lane_leases (lane, pace_key) VALUES ($1, $2)
     ON CONFLICT (lane) DO UPDATE SET pace_key = excluded.pace_key";

/// Moves `$1` lane's pace key's next send time to at least `$2`.
pub(crate) const PUSH_PACE: &str = "INSERT INTO pacing (key, next_send_at)
     VALUES (COALESCE((SELECT pace_key FROM lane_leases WHERE lane = $1), $1), $2)
     ON CONFLICT (key) DO UPDATE SET next_send_at = GREATEST(pacing.next_send_at, excluded.next_send_at)";

/// How long a heartbeat keeps what is dead or idle.
pub(crate) const FORGET_MS: i64 = 86_400_000;

/// What a heartbeat forgets (`$1`: a day ago): gateways dead since, leases
/// that ran out since on lanes with nothing to deliver and no stored
/// account (a per-request session's), and pace keys idle since.
pub(crate) const FORGET_SQL: [&str; 3] = [
    "DELETE FROM gateways WHERE expires_at < $1",
    "DELETE FROM lane_leases WHERE expires_at < $1
       AND lane NOT IN (SELECT 'account:' || name FROM accounts)
       AND lane NOT IN (SELECT lane FROM outbox WHERE state IN ('accepted', 'sending'))",
    "DELETE FROM pacing WHERE next_send_at < $1",
];

/// How sends of one pace key are spaced: at least `min_interval_ms` apart,
/// plus a random extra of up to `jitter_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    /// The least time between two sends (0: no pacing).
    pub min_interval_ms: i64,
    /// The largest random extra.
    pub jitter_ms: i64,
}

impl Pace {
    /// Whether sends are spaced at all.
    pub fn is_on(self) -> bool {
        self.min_interval_ms > 0 || self.jitter_ms > 0
    }

    /// The gap after one send: the interval and a draw of the jitter.
    pub(crate) fn gap(self) -> i64 {
        let jitter = if self.jitter_ms > 0 {
            rand::random_range(0..=self.jitter_ms)
        } else {
            0
        };
        self.min_interval_ms.max(0) + jitter
    }
}

/// Who claims, and how: [`crate::Store::claim_due`] takes only messages of
/// lanes `gateway` holds an unexpired lease on; with pacing on, each takes
/// its pace key's next slot (no later than `horizon_ms` from now), and the
/// slot comes back as [`crate::OutboxMessage::send_at`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimScope {
    /// The claiming gateway's id.
    pub gateway: String,
    /// How long a claimed message is leased.
    pub lease_ms: i64,
    /// The pacing of every lane.
    pub pace: Pace,
    /// How far ahead a paced message may be claimed.
    pub horizon_ms: i64,
}

/// Paced claims read this many candidates per message wanted, since some
/// share a pace key and wait for a later claim.
const PACED_CANDIDATES: u32 = 4;

impl ClaimScope {
    /// How many due rows a claim of `max` messages reads.
    pub(crate) fn candidates(&self, max: u32) -> u32 {
        if self.pace.is_on() {
            max.saturating_mul(PACED_CANDIDATES)
        } else {
            max
        }
    }
}

/// A gateway's heartbeat: alive until `expires_at`, with what it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayBeat {
    /// Its id (unique per process).
    pub id: String,
    /// When it started.
    pub started_at: i64,
    /// It counts as dead after this.
    pub expires_at: i64,
}

/// A gateway as the heartbeat table knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GatewayInfo {
    /// Its id.
    pub id: String,
    /// When it started (ms).
    pub started_at: i64,
    /// Its last heartbeat (ms).
    pub heartbeat_at: i64,
    /// It counts as dead after this (ms).
    pub expires_at: i64,
    /// Lanes it holds.
    pub owned: u64,
    /// Messages not yet final on the lanes it holds.
    pub outbox_depth: u64,
}

/// A lane and its lease, as [`crate::Store::heartbeat`] reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneLease {
    /// The lane.
    pub lane: String,
    /// Its owner, when it has one (the lease may have run out).
    pub owner: Option<String>,
    /// When the lease runs out (ms; 0 when never taken).
    pub expires_at: i64,
    /// The fencing token.
    pub token: i64,
}

impl LaneLease {
    /// Whether `gateway` holds it at `now`.
    pub fn held_by(&self, gateway: &str, now: i64) -> bool {
        self.owner.as_deref() == Some(gateway) && self.expires_at > now
    }

    /// Whether someone holds it at `now`.
    pub fn held(&self, now: i64) -> bool {
        self.owner.is_some() && self.expires_at > now
    }
}

/// What a heartbeat reads back: the live gateways (this one included) and
/// every lane there is (each stored account's, and each lane with messages
/// to deliver) with its lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Gateways whose heartbeat has not expired, by id.
    pub gateways: Vec<GatewayInfo>,
    /// Every lane, by name.
    pub lanes: Vec<LaneLease>,
}

/// Leases to take, renew or give up, for [`crate::Store::change_leases`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseChange {
    /// The gateway.
    pub gateway: String,
    /// Lanes to take (when free or expired) or renew (when its own): each
    /// held until `now + lease_ms` afterwards.
    pub take: Vec<String>,
    /// Lanes to give up, if its own.
    pub release: Vec<String>,
    /// Take even lanes another gateway holds (a gateway alone on its
    /// database: SQLite).
    pub force: bool,
    /// How long a lease lasts.
    pub lease_ms: i64,
}

/// A lease held, as [`crate::Store::change_leases`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLane {
    /// The lane.
    pub lane: String,
    /// Its fencing token.
    pub token: i64,
    /// When the lease runs out (ms).
    pub expires_at: i64,
}

/// Which of the due `candidates` (oldest first) a claim takes, at most
/// `max`: with pacing off, the first `max`; with it on, each in turn takes
/// its pace key's next slot (`next`, by key: the stored next send times,
/// updated here), skipped when that slot is beyond the horizon. Each taken
/// row's `send_at` is its slot. Answers the rows taken, and whether `next`
/// changed.
pub(crate) fn plan(
    candidates: Vec<crate::columns::ClaimedRow>,
    next: &mut std::collections::HashMap<String, i64>,
    scope: &ClaimScope,
    now: i64,
    max: usize,
) -> Vec<crate::columns::ClaimedRow> {
    let mut taken = Vec::with_capacity(candidates.len().min(max));
    for mut row in candidates {
        if taken.len() >= max {
            break;
        }
        if !scope.pace.is_on() {
            row.send_at = now;
            taken.push(row);
            continue;
        }
        let slot = next.get(&row.pace_key).copied().unwrap_or(now).max(now);
        if slot > now + scope.horizon_ms {
            continue;
        }
        next.insert(row.pace_key.clone(), slot + scope.pace.gap());
        row.send_at = slot;
        taken.push(row);
    }
    taken
}
