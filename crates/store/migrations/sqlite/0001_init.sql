-- API keys: only a SHA-256 hash of the key is stored.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    key_hash      BLOB    NOT NULL UNIQUE,
    daily_limit   INTEGER,
    monthly_limit INTEGER,
    account       TEXT,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

-- Stored TikTok accounts: the session is sealed (AES-256-GCM) by the gateway.
CREATE TABLE accounts (
    name           TEXT    PRIMARY KEY,
    session_sealed BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- One accepted API request: a text, an image, or both.
CREATE TABLE requests (
    id                    TEXT    PRIMARY KEY,
    api_key_id            INTEGER NOT NULL REFERENCES api_keys(id),
    idempotency_key       TEXT,
    request_hash          TEXT    NOT NULL,
    account               TEXT,
    session_sealed        BLOB,
    conversation_id       TEXT    NOT NULL,
    conversation_short_id INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    UNIQUE (api_key_id, idempotency_key)
);

-- The outbox: one row per message, its client message id fixed at acceptance.
CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id        TEXT    NOT NULL REFERENCES requests(id),
    position          INTEGER NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('image', 'text')),
    client_message_id TEXT    NOT NULL UNIQUE,
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
    UNIQUE (request_id, position)
);

CREATE INDEX outbox_due   ON outbox (state, next_attempt_at);
CREATE INDEX outbox_quota ON outbox (api_key_id, created_at);
