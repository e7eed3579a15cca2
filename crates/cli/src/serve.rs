//! `tiktok-dm serve`: settings layered from defaults, a config file, `TIKTOK_DM_*`
//! variables and flags (validated before anything starts), then the gateway.

use std::process::ExitCode;

use anyhow::Context as _;
use tiktok_dm_gateway::Application;
use tiktok_dm_gateway::admin;
use tiktok_dm_gateway::config::Layers;
use tiktok_dm_sandbox::{Sandbox, Seed};
use tokio::net::TcpListener;

use crate::args::ServeArgs;
use crate::manage::{create_key, open_store, vault};
use crate::sandbox::{ready_line, shutdown_signal};
use tiktok_dm_gateway::now_ms;

/// The settings from every layer; nothing has started yet.
fn layers(a: &ServeArgs) -> anyhow::Result<Layers> {
    let mut layers = Layers::default();
    if let Some(path) = &a.config {
        let what = format!("the config file {}", path.display());
        let text = crate::bounded::read_file_text(path, crate::bounded::MAX_CONFIG_BYTES, &what)
            .map_err(anyhow::Error::msg)?;
        layers.file(&path.display().to_string(), &text)?;
    }
    // Variables that are not Unicode cannot be ours; they are skipped.
    layers.env(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )?;
    layers.flag("listen", a.listen.clone());
    layers.flag("database", a.database.clone());
    layers.flag("sandbox_url", a.sandbox_url.clone());
    Ok(layers)
}

pub async fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut layers = layers(&a)?;
    // Validated in full before the database is opened or a socket bound.
    let config = layers.resolve()?;
    let store = open_store(&config.database).await?;
    // Before anything is sealed or served: a key that is not the database's
    // stops here, naming the fix.
    let vault = vault(&store, &config.database, config.master_key_file.as_deref()).await?;
    let mut sandbox_info = None;
    let mut admin_key = None;
    if a.sandbox {
        let sandbox = Sandbox::new(Seed::default_seed()?)?;
        let handle = sandbox.handle();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(sandbox.run(listener, shutdown_signal()));
        let alice = handle
            .account("alice")
            .ok_or_else(|| anyhow::anyhow!("the default seed has no alice"))?
            .clone();
        admin::put_account(&store, &vault, "sandbox", &alice.session, None, now_ms()).await?;
        let name = format!("sandbox-{}", now_ms());
        let spec = tiktok_dm_gateway::admin::KeySpec {
            name: name.clone(),
            account: Some("sandbox".into()),
            ..Default::default()
        };
        let (key, _) = create_key(&store, spec).await?;
        sandbox_info = Some((base.clone(), key, ready_line(&base, handle.seed())));
        layers.flag("sandbox_url", Some(base));
        // Webhooks to a local receiver are what a sandbox run is for.
        layers.flag("allow_private_webhooks", Some("true".into()));
        if config.settings.admin_key_hash.is_none() {
            // A throwaway admin key for this sandbox run, printed with the rest.
            let issued = tiktok_dm_gateway::secrets::issue_key();
            layers.flag("admin_key", Some(issued.reveal().to_owned()));
            admin_key = Some(issued.reveal().to_owned());
        }
    }
    let config = layers.resolve()?;
    let app = Application::build(&config.listen, config.settings, store, vault)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let url = format!("http://{}", app.local_addr()?);
    match sandbox_info {
        Some((sandbox_url, key, seed)) => crate::output::print_ready_line(
            serde_json::json!({"url": url, "api_key": key, "admin_key": admin_key, "account": "sandbox", "sandbox_url": sandbox_url, "conversations": seed["conversations"]}),
        ),
        None => crate::output::print_ready_line(serde_json::json!({"url": url})),
    }
    app.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
