//! `tiktok-dm webhooks`: an API key's webhooks, in the same database as
//! `serve` (safe while it runs). `add` seals the secret with the master key,
//! as `accounts add` seals a session.

use std::process::ExitCode;

use secrecy::ExposeSecret as _;
use tiktok_dm_gateway::now_ms;
use tiktok_dm_store::{AnyStore, ApiKey, Store};

use crate::args::{DatabaseArgs, WebhooksCommand};
use crate::manage::{open_store, vault};

/// The active key named `name`.
async fn active_key(store: &AnyStore, name: &str) -> anyhow::Result<ApiKey> {
    store
        .list_api_keys()
        .await?
        .into_iter()
        .find(|k| k.name == name && k.revoked_at.is_none())
        .ok_or_else(|| anyhow::anyhow!("no active API key named {name:?}"))
}

pub async fn run(command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::Add {
            key,
            url,
            events,
            allow_private,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            let key = active_key(&store, &key).await?;
            let vault = vault(&store, &database, None).await?;
            let created = tiktok_dm_gateway::webhooks::create(
                &store,
                &vault,
                key.id,
                &url,
                &events,
                allow_private,
                now_ms(),
            )
            .await?;
            let w = &created.webhook;
            crate::output::print_line(serde_json::json!({
                "id": w.id,
                "key": key.name,
                "url": w.url,
                "events": w.events,
                "secret": created.secret.expose_secret(),
                "created_at": w.created_at,
            }))?;
            eprintln!(
                "webhook {} created; its secret is shown only this once.",
                w.id
            );
        }
        WebhooksCommand::List {
            key,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            let keys = match key {
                Some(name) => vec![active_key(&store, &name).await?],
                None => store.list_api_keys().await?,
            };
            let mut shown = Vec::new();
            for k in &keys {
                for w in store.webhooks_for_key(k.id).await? {
                    shown.push(serde_json::json!({"id": w.id, "key": k.name, "url": w.url, "events": w.events, "created_at": w.created_at}));
                }
            }
            crate::output::print_line(serde_json::Value::Array(shown))?;
        }
        WebhooksCommand::Remove {
            key,
            id,
            database: DatabaseArgs { database },
        } => {
            let store = open_store(&database).await?;
            let key = active_key(&store, &key).await?;
            if !store.delete_webhook(key.id, &id).await? {
                eprintln!("error: API key {:?} has no webhook {id:?}", key.name);
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
