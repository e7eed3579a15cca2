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
async fn the_demo_goes_through_the_gateway_text_image_and_a_quota_refusal() {
    let out = run(args(&["demo"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let steps = v["steps"].as_array().unwrap();
    let statuses: Vec<u64> = steps
        .iter()
        .map(|s| s["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(steps[1]["answer"]["quota"]["daily"]["remaining"], 0);
    assert_eq!(steps[2]["answer"]["error"]["code"], "quota_exceeded");
    let received = v["sandbox_received"].as_array().unwrap();
    let kinds: Vec<u64> = received
        .iter()
        .map(|m| m["message_type"].as_u64().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [7, 1802, 7],
        "text, then the image before its caption"
    );
    assert_eq!(
        received[0]["client_message_id"],
        steps[0]["answer"]["messages"][0]["client_message_id"]
    );
}
