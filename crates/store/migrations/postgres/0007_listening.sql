-- Listening (issue 18): whether the gateway listens for a stored account's
-- DMs, and whether its session still works. `status` has no CHECK (as the
-- outbox's `kind`): the store reads it back and refuses an unknown one.
-- Accounts stored before have been active since they were made.
ALTER TABLE accounts ADD COLUMN listen BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE accounts ADD COLUMN status_changed_at BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET status_changed_at = created_at;

-- How far catch-up has read each conversation of an account; they go with
-- their account.
CREATE TABLE conversation_cursors (
    account                TEXT   NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    conversation_id        TEXT   NOT NULL,
    last_server_message_id BIGINT NOT NULL,
    last_index             BIGINT NOT NULL,
    PRIMARY KEY (account, conversation_id)
);
