-- A key may send as the stored accounts listed for it (the first is the one
-- it sends as when a request names none), or as any stored account when
-- `any_account` is set. Keys made before this migration keep what they
-- could do: a bound key its account, an unbound one every account.
CREATE TABLE api_key_accounts (
    api_key_id BIGINT NOT NULL REFERENCES api_keys(id),
    position   INTEGER NOT NULL,
    account    TEXT    NOT NULL,
    PRIMARY KEY (api_key_id, account)
);
INSERT INTO api_key_accounts (api_key_id, position, account)
SELECT id, 0, account FROM api_keys WHERE account IS NOT NULL;
ALTER TABLE api_keys ADD COLUMN any_account BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE api_keys SET any_account = TRUE WHERE account IS NULL;
