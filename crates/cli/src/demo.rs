//! `tiktok-dm demo`: the whole path on one machine, with no account: a sandbox on
//! an ephemeral loopback port, the real client over a real socket, and what the
//! sandbox received.

use std::process::ExitCode;
use std::time::Duration;

use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::{Config, Credentials, Endpoints, Target, TransportMode};
use tiktok_dm_sandbox::{Sandbox, Seed};
use tokio::net::TcpListener;

use crate::send::{SendPlan, execute};

pub async fn run() -> anyhow::Result<ExitCode> {
    let sandbox = Sandbox::new(Seed::default_seed()?)?;
    let handle = sandbox.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandbox.run(listener, async move {
        let _ = stopped.await;
    }));

    let alice = handle
        .account("alice")
        .ok_or_else(|| anyhow::anyhow!("the default seed has no alice"))?;
    let conversation = &handle.seed().conversations[0];
    let config = Config::builder(Credentials::parse(&alice.session)?)
        .endpoints(Endpoints::sandbox(&base_url)?)
        .transport(TransportMode::Auto)
        .request_timeout(Duration::from_secs(5))
        .build()?;
    let plan = SendPlan {
        config,
        target: Target::parse(
            conversation.conversation_id.as_str(),
            &conversation.conversation_short_id.to_string(),
        )?,
        text: MessageText::parse("Hello from the tiktok-dm demo 👋")?,
    };
    let result = execute(plan).await;
    let report = serde_json::json!({
        "sandbox": base_url,
        "sent_as": alice.name,
        "result": result,
        "sandbox_received": handle.messages(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let _ = stop.send(());
    let _ = server.await;
    Ok(if result.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
