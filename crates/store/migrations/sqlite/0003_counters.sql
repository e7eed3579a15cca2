-- Usage and quota are counted in counters updated in the accepting transaction
-- (and given back when messages fail), so neither a quota check nor a usage
-- answer scans the outbox.
ALTER TABLE requests ADD COLUMN day_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN month_start INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET
    day_start = created_at - (created_at % 86400000),
    month_start = CAST(strftime('%s', created_at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000;

CREATE TABLE usage_counters (
    api_key_id  INTEGER NOT NULL REFERENCES api_keys(id),
    period      TEXT    NOT NULL CHECK (period IN ('day', 'month', 'all')),
    start       INTEGER NOT NULL,
    messages    INTEGER NOT NULL,
    image_bytes INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, period, start)
) WITHOUT ROWID;

INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
SELECT o.api_key_id, 'day', r.day_start, COUNT(*), SUM(o.image_bytes)
FROM outbox o JOIN requests r ON r.id = o.request_id
WHERE o.state != 'failed' GROUP BY o.api_key_id, r.day_start;

INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
SELECT o.api_key_id, 'month', r.month_start, COUNT(*), SUM(o.image_bytes)
FROM outbox o JOIN requests r ON r.id = o.request_id
WHERE o.state != 'failed' GROUP BY o.api_key_id, r.month_start;

INSERT INTO usage_counters (api_key_id, period, start, messages, image_bytes)
SELECT api_key_id, 'all', 0, COUNT(*), SUM(image_bytes)
FROM outbox WHERE state != 'failed' GROUP BY api_key_id;

DROP INDEX outbox_quota;
