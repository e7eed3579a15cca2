//! `tiktok-dm keys` and `tiktok-dm accounts`: the same database as `serve`, safe
//! while it runs.

use std::process::ExitCode;

use anyhow::Context as _;
use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::admin::{self, KeySpec};
use tiktok_dm_gateway::secrets::{
    KeyCheck, MASTER_KEY_ENV, Vault, check_master_key, database_has_a_key,
};
use tiktok_dm_gateway::{Settings, now_ms};
use tiktok_dm_store::{AccountStatus, AnyStore, Store, database_shown, is_postgres_url};

use crate::args::{AccountsCommand, DatabaseArgs, KeysCommand, Switch};

/// Where the master key comes from.
enum KeySource {
    /// [`MASTER_KEY_ENV`], which holds it.
    Env(String),
    /// A key file.
    File(std::path::PathBuf),
}

/// The master key's source: the environment, or a key file (by default
/// beside the database).
fn key_source(database: &str, key_file: Option<&str>) -> anyhow::Result<KeySource> {
    if let Ok(value) = std::env::var(MASTER_KEY_ENV) {
        return Ok(KeySource::Env(value));
    }
    Ok(KeySource::File(match key_file {
        Some(path) => std::path::PathBuf::from(path),
        // Every gateway sharing a server database must open the same sessions:
        // a key file made up beside one of them would not do.
        None if is_postgres_url(database) => anyhow::bail!(
            "with a PostgreSQL database, give the master key: set {MASTER_KEY_ENV} or master_key_file (the same for every gateway sharing the database)"
        ),
        None => std::path::PathBuf::from(
            database
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:"),
        )
        .with_extension("key"),
    }))
}

/// What to do when the database's key is lost (the end of both refusals).
const START_OVER: &str = "If that key is lost, so are the sessions sealed with it: delete the stored accounts and the key check (SQL: DELETE FROM accounts; DELETE FROM meta WHERE name = 'master_key_check';) and add the accounts again, or start with a new database";

/// The master key, checked against the one the database in `store` was set up
/// with (and recorded there when it has none): from the environment, or a key
/// file (by default beside the database, created with mode 0600 for a database
/// that has no key yet). A key that is not the database's is refused, as is a
/// missing key file once the database has a key, with what to do.
pub async fn vault(
    store: &AnyStore,
    database: &str,
    key_file: Option<&str>,
) -> anyhow::Result<Vault> {
    let source = key_source(database, key_file)?;
    let vault = match &source {
        KeySource::Env(value) => Vault::from_base64(value)
            .with_context(|| format!("{MASTER_KEY_ENV} is set but unusable"))?,
        KeySource::File(path) => match Vault::load(path)? {
            Some(vault) => vault,
            None if database_has_a_key(store).await? => anyhow::bail!(
                "the master key file {} is missing, but this database was set up with a master key, and a new key would open none of its sessions. Restore the file from a backup (or set {MASTER_KEY_ENV} to the key). {START_OVER}",
                path.display()
            ),
            None => Vault::load_or_create(path)?,
        },
    };
    match check_master_key(store, &vault).await? {
        KeyCheck::Matches | KeyCheck::Recorded => Ok(vault),
        KeyCheck::Mismatch => {
            let (used, restore) = match &source {
                KeySource::Env(_) => (
                    format!("the master key in {MASTER_KEY_ENV}"),
                    format!("set {MASTER_KEY_ENV} to that key, or unset it to use the key file"),
                ),
                KeySource::File(path) => (
                    format!("the master key in {}", path.display()),
                    format!(
                        "put that key file back at {}, or set {MASTER_KEY_ENV} to the key",
                        path.display()
                    ),
                ),
            };
            anyhow::bail!(
                "{used} is not the key this database was set up with; it opens none of its sealed sessions. Restore the database's key: {restore}. {START_OVER}"
            )
        }
    }
}

/// The store `database` names: a PostgreSQL URL, else a SQLite file. A URL is
/// named in errors without its password.
pub async fn open_store(database: &str) -> anyhow::Result<AnyStore> {
    AnyStore::open(database)
        .await
        .with_context(|| format!("cannot open the database {}", database_shown(database)))
}

/// Creates a key with `spec`: the key itself (shown once) and its prefix.
pub async fn create_key(store: &AnyStore, spec: KeySpec) -> anyhow::Result<(String, String)> {
    let (issued, key) = admin::create_key(store, spec, now_ms()).await?;
    Ok((issued.reveal().to_owned(), key.prefix))
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            name,
            daily_limit,
            monthly_limit,
            accounts,
            any_account,
            json,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            let spec = KeySpec {
                name: name.clone(),
                daily_limit,
                monthly_limit,
                account: None,
                accounts: accounts.clone(),
                any_account,
            };
            let (key, prefix) = create_key(&store, spec).await?;
            if json {
                crate::output::print_line(
                    serde_json::json!({"key": key, "name": name, "prefix": prefix, "daily_limit": daily_limit, "monthly_limit": monthly_limit, "account": accounts.first(), "accounts": accounts, "any_account": any_account}),
                )?;
            } else {
                crate::output::print_line(&key)?;
                eprintln!("API key {name:?} created; it is shown only this once.");
            }
        }
        KeysCommand::List {
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            crate::output::print_line(serde_json::to_string(&store.list_api_keys().await?)?)?;
        }
        KeysCommand::Revoke {
            name,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            if !store.revoke_api_key(&name, now_ms()).await? {
                eprintln!("error: no active API key named {name:?}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a session from `@FILE` or `-`; a bare value is refused.
fn read_secret(source: &str) -> anyhow::Result<String> {
    match crate::bounded::read_session_source(source) {
        Some(read) => read.map_err(anyhow::Error::msg),
        None => anyhow::bail!(
            "pass the session as @FILE or - (standard input), not on the command line"
        ),
    }
}

pub async fn accounts(command: AccountsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountsCommand::Add {
            name,
            session,
            no_listen,
            database: DatabaseArgs { database },
        } => {
            let session = read_secret(&session)?;
            let store = open_store(&database).await?;
            let vault = vault(&store, &database, None).await?;
            // The session's form is checked here, so a typo is not found at send time.
            let listen = no_listen.then_some(false);
            let listen =
                admin::put_account(&store, &vault, &name, &session, listen, now_ms()).await?;
            let listening = if listen { "on" } else { "off" };
            eprintln!("account {name:?} stored; listening {listening}");
        }
        AccountsCommand::Listen {
            name,
            switch,
            database: DatabaseArgs { database },
        } => return switch_listening(&name, switch == Switch::On, &database).await,
        AccountsCommand::List {
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            crate::output::print_line(serde_json::to_string(&store.list_accounts().await?)?)?;
        }
        AccountsCommand::Check {
            name,
            database: DatabaseArgs { database },
            sandbox_url,
        } => {
            let store = open_store(&database).await?;
            let endpoints = match &sandbox_url {
                Some(url) => Endpoints::sandbox(url)?,
                None => Endpoints::tiktok(),
            };
            let check = admin::check_account(
                &store,
                &vault(&store, &database, None).await?,
                &Settings::new(endpoints),
                &name,
            )
            .await?;
            crate::output::print_line(serde_json::to_string(&check)?)?;
            // 0: accepted; 1: rejected; 2: TikTok could not be asked.
            return Ok(match check.code {
                None => ExitCode::SUCCESS,
                Some("session_rejected") => ExitCode::from(1),
                Some(_) => ExitCode::from(2),
            });
        }
        AccountsCommand::Remove {
            name,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            if !store.remove_account(&name).await? {
                eprintln!("error: no account named {name:?}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `accounts listen NAME on|off`: exits 1 for an account that is not stored.
async fn switch_listening(name: &str, listen: bool, database: &str) -> anyhow::Result<ExitCode> {
    let store = open_store(database).await?;
    match admin::set_listen(&store, name, listen).await {
        Ok(()) => {}
        Err(tiktok_dm_gateway::Error::NotFound(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    }
    if !listen {
        eprintln!(
            "account {name:?}: listening off; a running gateway stops its listener within 2 s"
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "account {name:?}: listening on; a running gateway starts its listener within 2 s, catching up what came since it stopped"
    );
    let expired = store
        .list_accounts()
        .await?
        .iter()
        .any(|a| a.name == name && a.status == AccountStatus::Expired);
    if expired {
        eprintln!(
            "note: TikTok refused its session, so it is not listened to until a new one is stored (accounts add --name {name} --session @FILE)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
