-- The inbox a request's conversation sits in (0 direct, 3 message request),
-- sent with each of its messages as TikTok web does. Requests stored before
-- this migration went out with 0, and keep it.
ALTER TABLE requests ADD COLUMN inbox_type INTEGER NOT NULL DEFAULT 0;
