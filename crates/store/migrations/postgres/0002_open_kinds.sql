-- The outbox without the CHECK on `kind`: the kinds of message are the
-- `Kind` enum's (crates/proto/src/message.rs), which the store reads back and
-- refuses when unknown, so that adding a kind needs no schema change.
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_kind_check;
