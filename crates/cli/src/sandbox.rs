//! `tiktok-dm sandbox`: serve the emulator until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context as _;
use tiktok_dm_sandbox::{Sandbox, Seed};
use tokio::net::TcpListener;

use crate::args::SandboxArgs;

/// The JSON line printed when the sandbox is ready. Ids are strings so that
/// JavaScript consumers keep every digit.
pub fn ready_line(base_url: &str, seed: &Seed) -> serde_json::Value {
    serde_json::json!({
        "base_url": base_url,
        "accounts": seed.accounts.iter().map(|a| serde_json::json!({
            "name": a.name,
            "uid": a.uid.to_string(),
            "session": a.session,
        })).collect::<Vec<_>>(),
        "conversations": seed.conversations.iter().map(|c| serde_json::json!({
            "conversation_id": c.conversation_id,
            "conversation_short_id": c.conversation_short_id.to_string(),
            "message_request": c.message_request,
        })).collect::<Vec<_>>(),
    })
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    // A handler that cannot be installed waits forever rather than stopping
    // the server at once.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub async fn run(a: SandboxArgs) -> anyhow::Result<ExitCode> {
    let seed = match &a.seed {
        Some(path) => {
            let what = format!("seed file {}", path.display());
            let text = crate::bounded::read_file_text(path, crate::bounded::MAX_SEED_BYTES, &what)
                .map_err(anyhow::Error::msg)?;
            serde_json::from_str(&text)
                .with_context(|| format!("seed file {} is not a valid seed", path.display()))?
        }
        None => Seed::default_seed()?,
    };
    let sandbox = Sandbox::new(seed)?;
    sandbox
        .handle()
        .require_ticket_guard(a.require_ticket_guard);
    let listener = TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let line = ready_line(&format!("http://{addr}"), sandbox.handle().seed());
    println!("{line}");
    sandbox.run(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
