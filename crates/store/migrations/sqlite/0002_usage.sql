-- Usage totals report image bytes; the image itself is dropped once final.
ALTER TABLE outbox ADD COLUMN image_bytes INTEGER NOT NULL DEFAULT 0;
