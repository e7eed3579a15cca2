-- Claims read each held lane's due messages in order from this index
-- (postgres/lanes.rs), so a claim costs what it takes, not the whole
-- backlog of the lanes it holds. It also serves what `outbox_lanes` did
-- (the pending rows of a lane), which it replaces.
CREATE INDEX outbox_lane_due ON outbox (lane, next_attempt_at, id) WHERE state IN ('accepted', 'sending');
DROP INDEX outbox_lanes;
