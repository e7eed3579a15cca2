//! Claims, gateways and lane leases on SQLite (see `crate::lanes`), run by
//! the writer. A SQLite database has one gateway (its writer is in-process),
//! which holds every lane; the tables are the same as PostgreSQL's so that
//! both backends answer alike.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use crate::columns::ClaimedRow;
use crate::error::Result;
use crate::lanes::{
    ALL_LANES, CARRY_PACE, ClaimScope, FORGET_MS, FORGET_SQL, GatewayBeat, GatewayInfo, HELD_LANES,
    HeldLane, LIVE_GATEWAYS, LaneLease, LeaseChange, Ownership, PUSH_PACE, SET_PACE_KEY,
    UPSERT_GATEWAY, plan,
};
use crate::types::Claimed;

use super::writer::{Done, Op};

/// A change run by the writer.
pub(crate) enum LaneOp {
    Claim {
        now: i64,
        scope: ClaimScope,
        max: u32,
    },
    Heartbeat(GatewayBeat, i64),
    Change(LeaseChange, i64),
    PaceKey(String, String),
    PushPace(String, i64),
}

impl From<LaneOp> for Op {
    fn from(op: LaneOp) -> Self {
        Self::Lanes(op)
    }
}

impl LaneOp {
    /// Whether the caller is told "stored" on the strength of it (no: each is
    /// redone safely after a power cut).
    pub(super) fn must_be_durable(&self) -> bool {
        false
    }

    pub(super) fn has_several_statements(&self) -> bool {
        !matches!(self, Self::PushPace(..))
    }

    pub(super) fn apply(self, c: &Connection) -> Result<Done> {
        match self {
            Self::Claim { now, scope, max } => claim(c, now, &scope, max).map(Done::Claimed),
            Self::Heartbeat(beat, now) => heartbeat(c, &beat, now).map(Done::Ownership),
            Self::Change(change, now) => change_leases(c, &change, now).map(Done::Held),
            Self::PaceKey(lane, key) => {
                for sql in [CARRY_PACE, SET_PACE_KEY] {
                    c.prepare_cached(&sqlite_sql(sql))?
                        .execute(params![lane, key])?;
                }
                Ok(Done::Unit)
            }
            Self::PushPace(lane, at) => {
                c.prepare_cached(&sqlite_sql(PUSH_PACE))?
                    .execute(params![lane, at])?;
                Ok(Done::Unit)
            }
        }
    }
}

/// The due messages of the claimer's lanes, oldest first: accepted and its
/// time has come, or sending with an expired lease (the worker that held it
/// died), and every earlier message of its request sent (an image precedes
/// its caption). With pacing, pace keys whose next slot is past the horizon
/// are left out. The `state IN` term matches the partial index
/// `outbox_pending` (SQLite uses a partial index only when the query repeats
/// its condition).
pub(crate) const CLAIM_SQL: &str = "SELECT o.id, o.request_id, o.position, o.kind, o.client_message_id, o.text, o.image_bytes, o.attempts, o.api_key_id,
        r.conversation_id, r.conversation_short_id, r.account, r.session_sealed, o.claim_token, r.created_at, o.transmissions,
        EXISTS (SELECT 1 FROM outbox n WHERE n.request_id = o.request_id AND n.position > o.position), r.inbox_type,
        o.lane, COALESCE(l.pace_key, o.lane)
 FROM outbox o JOIN requests r ON r.id = o.request_id JOIN lane_leases l ON l.lane = o.lane
 WHERE o.state IN ('accepted', 'sending')
   AND ((o.state = 'accepted' AND o.next_attempt_at <= ?1) OR (o.state = 'sending' AND o.locked_until < ?1))
   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.position < o.position AND p.state != 'sent')
   AND l.owner = ?3 AND l.expires_at > ?1
   AND (?4 = 0 OR NOT EXISTS (SELECT 1 FROM pacing g WHERE g.key = COALESCE(l.pace_key, o.lane) AND g.next_send_at > ?1 + ?5))
 ORDER BY o.next_attempt_at, o.id
 LIMIT ?2";

fn claim(c: &Connection, now: i64, scope: &ClaimScope, max: u32) -> Result<Vec<Claimed>> {
    let paced = scope.pace.is_on();
    let limit = scope.candidates(max);
    let mut select = c.prepare_cached(CLAIM_SQL)?;
    let mut candidates = Vec::new();
    let mut rows = select.query(params![
        now,
        i64::from(limit),
        scope.gateway,
        i64::from(paced),
        scope.horizon_ms
    ])?;
    while let Some(row) = rows.next()? {
        candidates.push(ClaimedRow {
            id: row.get(0)?,
            request_id: row.get(1)?,
            position: row.get(2)?,
            kind: row.get(3)?,
            client_message_id: row.get(4)?,
            text: row.get(5)?,
            image_bytes: row.get(6)?,
            attempts: row.get(7)?,
            api_key_id: row.get(8)?,
            conversation_id: row.get(9)?,
            conversation_short_id: row.get(10)?,
            account: row.get(11)?,
            session_sealed: row.get(12)?,
            // The token this claim raises it to (the writer is alone).
            token: row.get::<_, i64>(13)? + 1,
            accepted_at: row.get(14)?,
            transmissions: row.get(15)?,
            followed: row.get(16)?,
            inbox_type: row.get(17)?,
            lane: row.get(18)?,
            pace_key: row.get(19)?,
            send_at: now,
        });
    }
    let mut next = HashMap::new();
    if paced {
        let mut read = c.prepare_cached("SELECT next_send_at FROM pacing WHERE key = ?1")?;
        for row in &candidates {
            if !next.contains_key(&row.pace_key) {
                let at: Option<i64> = rusqlite::OptionalExtension::optional(
                    read.query_row(params![row.pace_key], |r| r.get(0)),
                )?;
                next.insert(row.pace_key.clone(), at.unwrap_or(now));
            }
        }
    }
    let before = next.clone();
    let taken = plan(candidates, &mut next, scope, now, max as usize);
    let mut pace = c.prepare_cached(
        "INSERT INTO pacing (key, next_send_at) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET next_send_at = excluded.next_send_at",
    )?;
    for (key, at) in &next {
        if before.get(key) != Some(at) {
            pace.execute(params![key, at])?;
        }
    }
    let mut lease = c.prepare_cached(
        "UPDATE outbox SET state = 'sending', locked_until = ?1, attempts = attempts + 1, claim_token = claim_token + 1, updated_at = ?2 WHERE id = ?3",
    )?;
    for m in &taken {
        lease.execute(params![now + scope.lease_ms, now, m.id])?;
    }
    Ok(taken.into_iter().map(ClaimedRow::into_claimed).collect())
}

/// A statement shared with PostgreSQL in SQLite's words: `?N` parameters,
/// two-argument `MAX`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?").replace("GREATEST(", "MAX(")
}

fn heartbeat(c: &Connection, beat: &GatewayBeat, now: i64) -> Result<Ownership> {
    c.prepare_cached(&sqlite_sql(UPSERT_GATEWAY))?
        .execute(params![beat.id, beat.started_at, now, beat.expires_at])?;
    for sql in FORGET_SQL {
        c.prepare_cached(&sqlite_sql(sql))?
            .execute(params![now - FORGET_MS])?;
    }
    let gateways = c
        .prepare_cached(&sqlite_sql(LIVE_GATEWAYS))?
        .query_map(params![now], |r| {
            Ok(GatewayInfo {
                id: r.get(0)?,
                started_at: r.get(1)?,
                heartbeat_at: r.get(2)?,
                expires_at: r.get(3)?,
                owned: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                outbox_depth: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let lanes = c
        .prepare_cached(&sqlite_sql(ALL_LANES))?
        .query_map([], |r| {
            Ok(LaneLease {
                lane: r.get(0)?,
                owner: r.get(1)?,
                expires_at: r.get(2)?,
                token: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Ownership { gateways, lanes })
}

fn change_leases(c: &Connection, change: &LeaseChange, now: i64) -> Result<Vec<HeldLane>> {
    let mut release = c.prepare_cached(
        "UPDATE lane_leases SET owner = NULL, expires_at = ?3 WHERE lane = ?1 AND owner = ?2",
    )?;
    for lane in &change.release {
        // Given up now: forgotten a day from now, like a lease run out.
        release.execute(params![lane, change.gateway, now])?;
    }
    // Renewing one's own live lease keeps its token; any other change of
    // hands (a lease taken, or one's own taken back after it ran out)
    // raises it.
    let mut take = c.prepare_cached(
        "INSERT INTO lane_leases (lane, owner, expires_at, token) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (lane) DO UPDATE SET
            token = CASE WHEN owner = excluded.owner AND expires_at > ?4 THEN token ELSE token + 1 END,
            owner = excluded.owner, expires_at = excluded.expires_at
         WHERE ?5 OR owner IS NULL OR owner = excluded.owner OR expires_at <= ?4",
    )?;
    for lane in &change.take {
        take.execute(params![
            lane,
            change.gateway,
            now + change.lease_ms,
            now,
            change.force
        ])?;
    }
    let held = c
        .prepare_cached(&sqlite_sql(HELD_LANES))?
        .query_map(params![change.gateway, now], |r| {
            Ok(HeldLane {
                lane: r.get(0)?,
                token: r.get(1)?,
                expires_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(held)
}
