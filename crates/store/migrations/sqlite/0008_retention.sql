-- Values the gateway keeps about the database itself; `master_key_check` is
-- a value sealed with the master key, which a gateway's key must open.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Requests by age, for the retention sweep.
CREATE INDEX requests_created ON requests (created_at);

-- A final message keeps its ids and outcome, not its content: nothing reads
-- it again.
UPDATE outbox SET text = NULL, image = NULL
WHERE state IN ('sent', 'failed', 'unknown') AND (text IS NOT NULL OR image IS NOT NULL);
