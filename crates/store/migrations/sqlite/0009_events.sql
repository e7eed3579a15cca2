-- The event log (issue 18): what happened on stored accounts, in the order
-- it was committed. `cursor` is AUTOINCREMENT so that a cursor is never
-- handed out twice, even after retention deleted the newest events: a reader
-- that has seen cursor N never finds a later event at or below N. The single
-- writer (and BEGIN IMMEDIATE across processes) makes cursor order commit
-- order. An event with a dedupe key is logged once per account (NULL keys
-- are distinct, so events without one are never duplicates).
CREATE TABLE events (
    cursor          INTEGER PRIMARY KEY AUTOINCREMENT,
    account         TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    conversation_id TEXT,
    dedupe_key      TEXT,
    payload         TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (account, dedupe_key)
);

-- Events by age, for the retention sweep.
CREATE INDEX events_created ON events (created_at);
