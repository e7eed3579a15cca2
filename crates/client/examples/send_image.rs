//! Send an image with a caption to the sandbox:
//! `cargo run -p tiktok-dm-client --example send_image -- photo.jpg`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tiktok_dm_client::compose::Outgoing;
use tiktok_dm_client::image::{DEFAULT_IMAGE_LIMIT, Image};
use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target};
use tiktok_dm_sandbox::{Sandbox, Seed};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = match std::env::args().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => tiktok_dm_test_support::noise_png(64, 48, 1),
    };
    let image = Image::from_bytes(bytes, DEFAULT_IMAGE_LIMIT)?;

    let sandbox = Sandbox::new(Seed::default_seed()?)?;
    let handle = sandbox.handle();
    let seed = handle.seed().clone();
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
    let outcome = session
        .send_outgoing(&target, Outgoing::new(Some("A caption"), Some(image))?)
        .await;
    for (kind, sent) in &outcome.sent {
        println!("{kind:?}: {}", sent.server_message_id);
    }
    if let Some((kind, err)) = outcome.failed {
        eprintln!("{kind:?} failed: {err}");
    }
    let stored = handle.messages();
    println!("the sandbox stored {} messages", stored.len());
    Ok(())
}
