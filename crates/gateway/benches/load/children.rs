//! The child processes (this binary again, told by `LOAD_CHILD` what to be):
//! the sandbox and the gateway, and the database a gateway runs on.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};
use tiktok_dm_client::Endpoints;

use crate::handle::Gateway;

fn until_stdin_closes() -> impl std::future::Future<Output = ()> {
    let closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    });
    async move {
        let _ = closed.await;
    }
}

pub fn sandbox_child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let seed = tiktok_dm_sandbox::Seed::with_crowd(crate::CROWD).unwrap();
        let sandbox = tiktok_dm_sandbox::Sandbox::new(seed).unwrap();
        sandbox.run(listener, until_stdin_closes()).await.unwrap();
    });
}

/// A gateway on `LOAD_DATABASE` sending to the sandbox at `LOAD_SANDBOX_URL`.
/// It prints its address and an API key: `LOAD_KEY` when set (a key another
/// gateway child created in the same database), else one it creates.
/// `LOAD_OWNER_LEASE_SECS` sets its lane ownership lease.
pub fn gateway_child() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sandbox_url = std::env::var("LOAD_SANDBOX_URL").unwrap();
        let database = std::env::var("LOAD_DATABASE").unwrap();
        let store = tiktok_dm_store::AnyStore::open(&database).await.unwrap();
        let key = match std::env::var("LOAD_KEY") {
            Ok(key) => key,
            Err(_) => create_key(&store).await,
        };
        let mut settings =
            tiktok_dm_gateway::Settings::new(Endpoints::sandbox(&sandbox_url).unwrap());
        // Every send is timed to its delivery, so none may be answered early
        // (under overload the default cap would answer the excess 202 at once).
        settings.max_waiting_sends = 1_000_000;
        // Nor refused: an open-loop run on a slow machine can have more than
        // the default 256 of its one key's sends in progress.
        settings.max_requests_per_key = 1_000_000;
        if let Ok(secs) = std::env::var("LOAD_OWNER_LEASE_SECS") {
            settings.owner_lease = std::time::Duration::from_secs(secs.parse().unwrap());
        }
        let vault = tiktok_dm_gateway::secrets::Vault::from_key(&[7; 32]);
        let app = tiktok_dm_gateway::Application::build("127.0.0.1:0", settings, store, vault)
            .await
            .unwrap();
        println!(
            "{}",
            json!({"url": format!("http://{}", app.local_addr().unwrap()), "key": key})
        );
        app.run(until_stdin_closes()).await.unwrap();
    });
}

/// Creates an API key (any per-request session, no limits) and answers it.
async fn create_key(store: &tiktok_dm_store::AnyStore) -> String {
    use tiktok_dm_store::Store as _;
    let issued = tiktok_dm_gateway::secrets::issue_key();
    store
        .create_api_key(
            tiktok_dm_store::NewApiKey {
                name: "load".into(),
                prefix: issued.prefix.clone(),
                key_hash: issued.hash,
                daily_limit: None,
                monthly_limit: None,
                accounts: Vec::new(),
                any_account: false,
            },
            0,
        )
        .await
        .unwrap();
    issued.reveal().to_owned()
}

/// Starts this binary as a `kind` child with `env`, and answers it and the
/// first line it printed.
pub fn spawn_child(kind: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("LOAD_CHILD", kind)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

/// Closes a child's stdin, which ends it, and waits for it.
pub fn stop(child: &mut Child) {
    let _ = child.stdin.take().map(|mut s| s.write_all(b"\n"));
    let _ = child.wait();
}

/// Starts a gateway child on `database`, sending to the sandbox at
/// `sandbox_url`, and the handle that sends `body` through it with `http`.
pub fn spawn_gateway(
    sandbox_url: &str,
    database: &str,
    http: reqwest::Client,
    body: Value,
) -> (Child, Arc<Gateway>) {
    spawn_gateway_with(sandbox_url, database, http, body, &[])
}

/// [`spawn_gateway`] with more of the child's environment (`LOAD_KEY`,
/// `LOAD_OWNER_LEASE_SECS`).
pub fn spawn_gateway_with(
    sandbox_url: &str,
    database: &str,
    http: reqwest::Client,
    body: Value,
    env: &[(&str, &str)],
) -> (Child, Arc<Gateway>) {
    let mut all = vec![
        ("LOAD_SANDBOX_URL", sandbox_url),
        ("LOAD_DATABASE", database),
    ];
    all.extend_from_slice(env);
    let (process, ready) = spawn_child("gateway", &all);
    let ready: Value = serde_json::from_str(&ready).unwrap();
    let gateway = Gateway {
        http,
        url: ready["url"].as_str().unwrap().to_owned(),
        key: ready["key"].as_str().unwrap().to_owned(),
        body,
    };
    (process, Arc::new(gateway))
}

/// The gateway's database: a fresh PostgreSQL schema (kept while the returned
/// guard lives), or the SQLite file `sqlite`.
pub async fn store_for(
    on_postgres: bool,
    sqlite: std::path::PathBuf,
) -> (String, Option<tiktok_dm_test_support::postgres::PgSchema>) {
    if on_postgres {
        let Some(schema) = tiktok_dm_test_support::postgres::PgSchema::create().await else {
            panic!(
                "LOAD_STORE=postgres needs the PostgreSQL server TDM_TEST_POSTGRES_URL names \
                 (see why it cannot be reached above); start it, or leave LOAD_STORE unset for SQLite"
            );
        };
        (schema.url.clone(), Some(schema))
    } else {
        (sqlite.to_str().unwrap().to_owned(), None)
    }
}
