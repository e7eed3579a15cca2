//! Claims, gateways and lane leases on PostgreSQL (see `crate::lanes`):
//! several gateways share the database, each claiming only its lanes'
//! messages, with `FOR UPDATE SKIP LOCKED` on the rows and a row lock per
//! pace key while a claim takes slots.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::columns::ClaimedRow;
use crate::error::Result;
use crate::lanes::{
    ALL_LANES, CARRY_PACE, ClaimScope, FORGET_MS, FORGET_SQL, GatewayBeat, GatewayInfo, HELD_LANES,
    HeldLane, LIVE_GATEWAYS, LaneLease, LeaseChange, Ownership, PUSH_PACE, SET_PACE_KEY,
    UPSERT_GATEWAY, plan,
};
use crate::types::Claimed;

/// The due messages of the claimer's lanes, oldest first (as on SQLite; see
/// `sqlite/lanes.rs`). Each held lane's first `$2` due rows that follow
/// their request's earlier messages (a caption waits for its image, which
/// a retry or a give-back may have put later) are read in order from
/// `outbox_lane_due` (an index scan: see [`PLAN`]), and the oldest `$2` of
/// those are locked. The scan stops at the first row not due yet (a row in
/// flight was due when claimed), so it reads what is due and what waits for
/// an earlier message, not the lane's whole backlog. (The planner's own
/// choice read every pending row of the held lanes and sorted them: ~30 ms a
/// claim at 2,500 pending, ~150 ms at 40,000.) Rows another claimer locked
/// meanwhile are skipped, not replaced: the claim takes fewer. The outer
/// query repeats `due`'s conditions so that they hold on each row as
/// locked (a row changed meanwhile is checked again).
const CANDIDATES: &str = "WITH due AS (
   SELECT x.id FROM lane_leases l CROSS JOIN LATERAL (
     SELECT o.id, o.next_attempt_at FROM outbox o
     WHERE o.lane = l.lane AND o.state IN ('accepted', 'sending') AND o.next_attempt_at <= $1
       AND (o.state = 'accepted' OR o.locked_until < $1)
       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.position < o.position AND p.state <> 'sent')
     ORDER BY o.next_attempt_at, o.id
     LIMIT $2) x
   WHERE l.owner = $3 AND l.expires_at > $1
     AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM pacing g WHERE g.key = COALESCE(l.pace_key, l.lane) AND g.next_send_at > $1 + $5))
   ORDER BY x.next_attempt_at, x.id
   LIMIT $2)
 SELECT o.id, o.request_id, o.position, o.kind, o.client_message_id, o.text, o.image_bytes, o.attempts,
        o.api_key_id, r.conversation_id, r.conversation_short_id, r.account, r.session_sealed,
        o.claim_token, r.created_at, o.transmissions,
        EXISTS (SELECT 1 FROM outbox n WHERE n.request_id = o.request_id AND n.position > o.position),
        r.inbox_type, o.lane, COALESCE(l.pace_key, o.lane)
 FROM outbox o JOIN requests r ON r.id = o.request_id JOIN lane_leases l ON l.lane = o.lane
 WHERE o.id = ANY(ARRAY(SELECT id FROM due)) AND o.state IN ('accepted', 'sending') AND o.next_attempt_at <= $1
   AND (o.state = 'accepted' OR o.locked_until < $1)
   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND p.position < o.position AND p.state <> 'sent')
   AND l.owner = $3 AND l.expires_at > $1
 ORDER BY o.next_attempt_at, o.id
 FOR UPDATE OF o SKIP LOCKED";

/// Sent ahead of [`CANDIDATES`] in its transaction, so that its plan is the
/// one written whatever the planner's estimates, which for a queue table are
/// rarely current (never with autovacuum off, and a connection's plan may
/// date from when the table was empty). Left to itself, it was seen to
/// prefer a bitmap scan of each lane's every pending row and a sort to an
/// index scan that stops after `$2` rows (a bitmap scan also never marks
/// the index entries of sent rows dead, so each claim walked them again), and
/// to join every pending row of the held lanes with `due` rather than look
/// `due`'s rows up (0.5 – 1.3 s a claim at 5,000 – 14,000 pending; hence
/// `due` as an array, read once). Joins go in the order written; the plan
/// is made once per connection (planning took ~2 ms, longer than a small
/// claim).
const PLAN: &str = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off;
     SET LOCAL join_collapse_limit = 1; SET LOCAL plan_cache_mode = force_generic_plan";

fn candidate(row: &Row, now: i64) -> Result<ClaimedRow> {
    Ok(ClaimedRow {
        id: row.try_get(0)?,
        request_id: row.try_get(1)?,
        position: row.try_get(2)?,
        kind: row.try_get(3)?,
        client_message_id: row.try_get(4)?,
        text: row.try_get(5)?,
        image_bytes: row.try_get(6)?,
        attempts: row.try_get(7)?,
        api_key_id: row.try_get(8)?,
        conversation_id: row.try_get(9)?,
        conversation_short_id: row.try_get(10)?,
        account: row.try_get(11)?,
        session_sealed: row.try_get(12)?,
        // The token this claim raises it to (the row is locked until then).
        token: row.try_get::<_, i64>(13)? + 1,
        accepted_at: row.try_get(14)?,
        transmissions: row.try_get(15)?,
        followed: row.try_get(16)?,
        inbox_type: row.try_get(17)?,
        lane: row.try_get(18)?,
        pace_key: row.try_get(19)?,
        send_at: now,
    })
}

/// Claims in one transaction `tx`: candidates, their pace keys' slots,
/// the leases. Commits nothing itself.
pub(super) async fn claim(
    tx: &impl GenericClient,
    now: i64,
    scope: &ClaimScope,
    max: u32,
) -> Result<Vec<Claimed>> {
    let paced = scope.pace.is_on();
    let limit = scope.candidates(max);
    let select = tx.prepare_cached(CANDIDATES).await?;
    let params: [&(dyn ToSql + Sync); 5] = [
        &now,
        &i64::from(limit),
        &scope.gateway,
        &paced,
        &scope.horizon_ms,
    ];
    // Pipelined: one round trip.
    let ((), rows) = tokio::try_join!(tx.batch_execute(PLAN), tx.query(&select, &params))?;
    let candidates = rows
        .iter()
        .map(|r| candidate(r, now))
        .collect::<Result<Vec<_>>>()?;
    let mut next = HashMap::new();
    if paced && !candidates.is_empty() {
        next = pace_slots(tx, &candidates, now).await?;
    }
    let before = next.clone();
    let taken = plan(candidates, &mut next, scope, now, max as usize);
    let (keys, ats): (Vec<&String>, Vec<i64>) = next
        .iter()
        .filter(|(k, at)| before.get(*k) != Some(*at))
        .map(|(k, at)| (k, *at))
        .unzip();
    if !keys.is_empty() {
        let s = tx
            .prepare_cached(
                "UPDATE pacing g SET next_send_at = u.at FROM unnest($1::text[], $2::bigint[]) AS u(key, at)
                 WHERE g.key = u.key",
            )
            .await?;
        tx.execute(&s, &[&keys, &ats]).await?;
    }
    if !taken.is_empty() {
        let ids: Vec<i64> = taken.iter().map(|m| m.id).collect();
        let s = tx
            .prepare_cached(
                "UPDATE outbox SET state = 'sending', locked_until = $1, attempts = attempts + 1,
                                   claim_token = claim_token + 1, updated_at = $2
                 WHERE id = ANY($3)",
            )
            .await?;
        tx.execute(&s, &[&(now + scope.lease_ms), &now, &ids])
            .await?;
    }
    Ok(taken.into_iter().map(ClaimedRow::into_claimed).collect())
}

/// The next send time of each pace key of `candidates`, its row locked for
/// this transaction (made first when new, as due now).
async fn pace_slots(
    tx: &impl GenericClient,
    candidates: &[ClaimedRow],
    now: i64,
) -> Result<HashMap<String, i64>> {
    let mut keys: Vec<&str> = candidates.iter().map(|c| c.pace_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let make = tx
        .prepare_cached(
            "INSERT INTO pacing (key, next_send_at) SELECT k, $2 FROM unnest($1::text[]) AS k
             ON CONFLICT (key) DO NOTHING",
        )
        .await?;
    tx.execute(&make, &[&keys, &now]).await?;
    // In key order, so two claimers lock them in one order.
    let read = tx
        .prepare_cached(
            "SELECT key, next_send_at FROM pacing WHERE key = ANY($1) ORDER BY key FOR UPDATE",
        )
        .await?;
    let rows = tx.query(&read, &[&keys]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)))
        .collect()
}

/// See [`crate::Store::heartbeat`].
pub(super) async fn heartbeat(
    c: &impl GenericClient,
    beat: &GatewayBeat,
    now: i64,
) -> Result<Ownership> {
    let upsert = c.prepare_cached(UPSERT_GATEWAY).await?;
    c.execute(
        &upsert,
        &[&beat.id, &beat.started_at, &now, &beat.expires_at],
    )
    .await?;
    for sql in FORGET_SQL {
        let forget = c.prepare_cached(sql).await?;
        c.execute(&forget, &[&(now - FORGET_MS)]).await?;
    }
    let live = c.prepare_cached(LIVE_GATEWAYS).await?;
    let gateways = c
        .query(&live, &[&now])
        .await?
        .iter()
        .map(|r| {
            Ok(GatewayInfo {
                id: r.try_get(0)?,
                started_at: r.try_get(1)?,
                heartbeat_at: r.try_get(2)?,
                expires_at: r.try_get(3)?,
                owned: u64::try_from(r.try_get::<_, i64>(4)?).unwrap_or(0),
                outbox_depth: u64::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let lanes = c.prepare_cached(ALL_LANES).await?;
    let lanes = c
        .query(&lanes, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(LaneLease {
                lane: r.try_get(0)?,
                owner: r.try_get(1)?,
                expires_at: r.try_get(2)?,
                token: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Ownership { gateways, lanes })
}

/// See [`crate::Store::change_leases`]; in one transaction `tx`.
pub(super) async fn change_leases(
    tx: &impl GenericClient,
    change: &LeaseChange,
    now: i64,
) -> Result<Vec<HeldLane>> {
    if !change.release.is_empty() {
        let s = tx
            .prepare_cached(
                "UPDATE lane_leases SET owner = NULL, expires_at = $3 WHERE lane = ANY($1) AND owner = $2",
            )
            .await?;
        // Given up now: forgotten a day from now, like a lease run out.
        tx.execute(&s, &[&change.release, &change.gateway, &now])
            .await?;
    }
    if !change.take.is_empty() {
        // Sorted, so that two gateways lock rows in one order. Renewing
        // one's own live lease keeps its token; any other change of hands
        // raises it.
        let mut take: Vec<&str> = change.take.iter().map(String::as_str).collect();
        take.sort_unstable();
        take.dedup();
        let s = tx
            .prepare_cached(
                "INSERT INTO lane_leases AS l (lane, owner, expires_at, token)
                 SELECT k, $2, $3, 1 FROM unnest($1::text[]) AS k
                 ON CONFLICT (lane) DO UPDATE SET
                    token = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > $4 THEN l.token ELSE l.token + 1 END,
                    owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                 WHERE $5 OR l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.expires_at <= $4",
            )
            .await?;
        tx.execute(
            &s,
            &[
                &take,
                &change.gateway,
                &(now + change.lease_ms),
                &now,
                &change.force,
            ],
        )
        .await?;
    }
    let s = tx.prepare_cached(HELD_LANES).await?;
    tx.query(&s, &[&change.gateway, &now])
        .await?
        .iter()
        .map(|r| {
            Ok(HeldLane {
                lane: r.try_get(0)?,
                token: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            })
        })
        .collect()
}

/// See [`crate::Store::set_pace_key`]; in one transaction `tx`.
pub(super) async fn set_pace_key(tx: &impl GenericClient, lane: &str, key: &str) -> Result<()> {
    // The old key's row is locked first: a claim taking its slots meanwhile
    // commits before the copy reads it, so no slot is handed out twice.
    for sql in [LOCK_OLD_PACE, CARRY_PACE, SET_PACE_KEY] {
        let s = tx.prepare_cached(sql).await?;
        tx.execute(&s, &[&lane, &key]).await?;
    }
    Ok(())
}

/// Locks `$1` lane's current pace key's row (`$2` unused, for one
/// parameter list).
const LOCK_OLD_PACE: &str = "SELECT next_send_at FROM pacing
     WHERE key = COALESCE((SELECT pace_key FROM lane_leases WHERE lane = $1), $1) AND $2::text IS NOT NULL
     FOR UPDATE";

/// See [`crate::Store::push_pacing`].
pub(super) async fn push_pacing(c: &impl GenericClient, lane: &str, at: i64) -> Result<()> {
    let s = c.prepare_cached(PUSH_PACE).await?;
    c.execute(&s, &[&lane, &at]).await?;
    Ok(())
}
