-- A fencing token per outbox row: each claim raises it, and every write of a
-- delivery's outcome must name the token of the claim it belongs to, so a
-- worker whose lease ran out (and whose row was claimed again) changes
-- nothing. `transmissions` counts the attempts that reached TikTok, which
-- `max_attempts` limits; an outage's attempts count only in `attempts`.
ALTER TABLE outbox ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN transmissions INTEGER NOT NULL DEFAULT 0;
