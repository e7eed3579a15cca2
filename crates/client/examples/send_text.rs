//! Send a text DM to the sandbox: `cargo run -p tiktok-dm-client --example send_text`.
//! Against TikTok, give the session of a logged-in account and drop `endpoints`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target};
use tiktok_dm_sandbox::{Sandbox, Seed};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An emulated TikTok on a free loopback port.
    let sandbox = Sandbox::new(Seed::default_seed()?)?;
    let seed = sandbox.handle().seed().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.run(listener, std::future::pending()));

    let config = Config::builder(Credentials::parse(&seed.accounts[0].session)?)
        .endpoints(Endpoints::sandbox(&base)?)
        .build()?;
    let session = Session::connect(config).await?;
    let c = &seed.conversations[0];
    let target = Target::parse(
        c.conversation_id.as_str(),
        &c.conversation_short_id.to_string(),
    )?;
    let sent = session.send_text(&target, "Hello from an example").await?;
    println!("sent {} over {:?}", sent.server_message_id, sent.transport);
    Ok(())
}
