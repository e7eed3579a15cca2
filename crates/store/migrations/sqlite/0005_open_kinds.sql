-- The outbox without the CHECK on `kind`: the kinds of message are the
-- `Kind` enum's (crates/proto/src/message.rs), which the store reads back and
-- refuses when unknown, so that adding a kind needs no table rebuild. This is
-- the last rebuild for that reason. (SQLite cannot drop a CHECK in place.)
CREATE TABLE outbox_next (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id        TEXT    NOT NULL REFERENCES requests(id),
    position          INTEGER NOT NULL,
    kind              TEXT    NOT NULL,
    client_message_id TEXT    NOT NULL,
    text              TEXT,
    image             BLOB,
    state             TEXT    NOT NULL CHECK (state IN ('accepted', 'sending', 'sent', 'failed', 'unknown')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    locked_until      INTEGER,
    server_message_id TEXT,
    transport         TEXT,
    error             TEXT,
    api_key_id        INTEGER NOT NULL REFERENCES api_keys(id),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    image_bytes       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (request_id, position)
);

INSERT INTO outbox_next (id, request_id, position, kind, client_message_id, text, image, state,
                         attempts, next_attempt_at, locked_until, server_message_id, transport,
                         error, api_key_id, created_at, updated_at, image_bytes)
SELECT id, request_id, position, kind, client_message_id, text, image, state,
       attempts, next_attempt_at, locked_until, server_message_id, transport,
       error, api_key_id, created_at, updated_at, image_bytes
FROM outbox;

-- Keep the id sequence where it was, so no id is ever handed out twice.
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'outbox')
WHERE name = 'outbox_next' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox');

DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;

CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state IN ('accepted', 'sending');
