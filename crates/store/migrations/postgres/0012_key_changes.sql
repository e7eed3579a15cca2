-- API keys are cached in each gateway's memory while it hears of their
-- changes (postgres/key_cache.rs): any change of a key or of its accounts
-- (a revocation by another gateway or by the CLI, say) notifies the channel
-- the gateways listen on, once per statement, at commit.
CREATE FUNCTION tiktok_dm_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tiktok_dm_api_keys', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tiktok_dm_api_keys_changed();

CREATE TRIGGER api_key_accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_key_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION tiktok_dm_api_keys_changed();
