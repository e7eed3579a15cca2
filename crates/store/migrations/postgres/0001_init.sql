-- The PostgreSQL schema: the same tables and meanings as the SQLite one after its
-- fourth migration. Times are Unix milliseconds (BIGINT).

CREATE TABLE api_keys (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    key_hash      BYTEA   NOT NULL UNIQUE,
    daily_limit   BIGINT,
    monthly_limit BIGINT,
    account       TEXT,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT
);

CREATE TABLE accounts (
    name           TEXT   PRIMARY KEY,
    session_sealed BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE requests (
    id                    TEXT    PRIMARY KEY,
    api_key_id            BIGINT  NOT NULL REFERENCES api_keys(id),
    idempotency_key       TEXT,
    request_hash          TEXT    NOT NULL,
    account               TEXT,
    session_sealed        BYTEA,
    conversation_id       TEXT    NOT NULL,
    conversation_short_id BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    day_start             BIGINT  NOT NULL,
    month_start           BIGINT  NOT NULL,
    UNIQUE (api_key_id, idempotency_key)
);

CREATE TABLE outbox (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id        TEXT    NOT NULL REFERENCES requests(id),
    position          BIGINT  NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('image', 'text')),
    client_message_id TEXT    NOT NULL,
    text              TEXT,
    image             BYTEA,
    image_bytes       BIGINT  NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL CHECK (state IN ('accepted', 'sending', 'sent', 'failed', 'unknown')),
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT  NOT NULL,
    locked_until      BIGINT,
    server_message_id TEXT,
    transport         TEXT,
    error             TEXT,
    api_key_id        BIGINT  NOT NULL REFERENCES api_keys(id),
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    UNIQUE (request_id, position)
);

CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state IN ('accepted', 'sending');

CREATE TABLE usage_counters (
    api_key_id  BIGINT NOT NULL REFERENCES api_keys(id),
    period      TEXT   NOT NULL CHECK (period IN ('day', 'month', 'all')),
    start       BIGINT NOT NULL,
    messages    BIGINT NOT NULL,
    image_bytes BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, period, start)
);
