//! `tiktok-dm sandbox` and `tiktok-dm demo` as a user runs them.

use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target};

use crate::{args, json, run};

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_command_prints_its_address_and_seed_then_serves() {
    let (mut child, ready) = crate::spawn_ready(&["sandbox", "--listen", "127.0.0.1:0"]).await;
    let base_url = ready["base_url"].as_str().unwrap().to_owned();
    let alice = &ready["accounts"][0];
    let conversation = &ready["conversations"][0];

    let config = Config::builder(Credentials::parse(alice["session"].as_str().unwrap()).unwrap())
        .endpoints(Endpoints::sandbox(&base_url).unwrap())
        .build()
        .unwrap();
    let session = Session::connect(config).await.unwrap();
    let target = Target::parse(
        conversation["conversation_id"].as_str().unwrap(),
        conversation["conversation_short_id"].as_str().unwrap(),
    )
    .unwrap();
    let sent = session
        .send_text(&target, "to a sandbox process")
        .await
        .unwrap();
    let listed: serde_json::Value =
        reqwest_like_get(&format!("{base_url}/_sandbox/messages")).await;
    assert_eq!(
        listed[0]["server_message_id"],
        sent.server_message_id.to_string()
    );
    child.kill().unwrap();
    let _ = child.wait();
}

/// A tiny HTTP GET over a raw socket, to avoid a client dependency in the CLI tests.
async fn reqwest_like_get(url: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_sends_through_the_client_and_shows_what_arrived() {
    let out = run(args(&["demo"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["result"]["success"], true);
    assert_eq!(
        v["sandbox_received"][0]["client_message_id"],
        v["result"]["messages"][0]["client_message_id"]
    );
}
