-- Webhooks (issue 18): an API key's endpoints, each receiving the event
-- types listed for it, of the accounts its key may see. The signing secret
-- is sealed by the gateway.
CREATE TABLE webhooks (
    id            TEXT    PRIMARY KEY,
    api_key_id    INTEGER NOT NULL REFERENCES api_keys(id),
    url           TEXT    NOT NULL,
    secret_sealed BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX webhooks_key ON webhooks (api_key_id);

-- A webhook's event types, in the order given; found by type when events
-- are appended.
CREATE TABLE webhook_events (
    webhook_id TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_type TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, event_type)
) WITHOUT ROWID;
CREATE INDEX webhook_events_type ON webhook_events (event_type);

-- The delivery queue: a row per webhook and event, written in the
-- transaction that appends the event. Claimed under a lease (`locked_until`)
-- and a fencing token (`claim_token`) as the outbox's messages are; ids are
-- never reused (AUTOINCREMENT), so a stale claim cannot name a new row. At
-- most one open (pending or delivering) row per webhook and event: a replay
-- does not queue an event twice. Rows go with their webhook and their event.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_cursor    INTEGER NOT NULL REFERENCES events(cursor) ON DELETE CASCADE,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    claim_token     INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'delivering');
CREATE UNIQUE INDEX webhook_deliveries_open ON webhook_deliveries (webhook_id, event_cursor)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_cursor);

-- Events by type, for a replay.
CREATE INDEX events_type ON events (event_type, cursor);
