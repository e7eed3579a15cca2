-- Scale-out (issue 19). A lane is what one gateway delivers for at a time:
-- a stored account (`account:NAME`) or a per-request session
-- (`session:` and a SHA-256 of the session). Each outbox row names its lane;
-- rows accepted before this migration get their account's lane, or one of
-- their own for a per-request session (its hash cannot be computed here).
ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT '';
UPDATE outbox o SET lane = CASE WHEN r.account IS NOT NULL THEN 'account:' || r.account ELSE 'request:' || r.id END
FROM requests r WHERE r.id = o.request_id;
CREATE INDEX outbox_lanes ON outbox (lane) WHERE state IN ('accepted', 'sending');

-- Gateways alive: each renews its row; one whose `expires_at` passed is dead.
CREATE TABLE gateways (
    id           TEXT   PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- Who owns a lane until when; `token` rises with every change of owner (a
-- fencing token). `pace_key` groups lanes paced together (the TikTok uid,
-- once known); without one a lane is paced alone.
CREATE TABLE lane_leases (
    lane       TEXT   PRIMARY KEY,
    owner      TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    token      BIGINT NOT NULL DEFAULT 0,
    pace_key   TEXT
);
CREATE INDEX lane_leases_owner ON lane_leases (owner);

-- The earliest time the next send of a pace key may go, advanced by claims.
CREATE TABLE pacing (
    key          TEXT   PRIMARY KEY,
    next_send_at BIGINT NOT NULL
);
