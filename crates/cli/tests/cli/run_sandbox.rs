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

/// A client that trusts only the certificate in `ca_file`.
fn trusting_only(ca_file: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(ca_file).unwrap();
    assert!(!String::from_utf8_lossy(&pem).contains("PRIVATE KEY"));
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_the_sandbox_command_prints_an_https_base_url_and_a_ca_file_a_client_trusting_only_it_uses()
 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cert.pem");
    let (mut child, ready) = crate::spawn_ready(&[
        "sandbox",
        "--tls",
        "--listen",
        "127.0.0.1:0",
        "--tls-name",
        "im-api-sg.tiktok.com",
        "--tls-cert-out",
        out.to_str().unwrap(),
    ])
    .await;
    let base_url = ready["base_url"].as_str().unwrap().to_owned();
    assert!(base_url.starts_with("https://127.0.0.1:"), "{base_url}");
    let ca_file = ready["ca_file"].as_str().unwrap();
    assert_eq!(std::path::Path::new(ca_file), out);
    let seed = trusting_only(ca_file)
        .get(format!("{base_url}/_sandbox/seed"))
        .send()
        .await
        .unwrap();
    assert_eq!(seed.status(), 200);
    let plain = base_url.replace("https://", "http://");
    assert!(trusting_only(ca_file).get(plain).send().await.is_err());
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_certificate_file_by_default_is_temporary_and_removed_when_the_sandbox_stops()
{
    let (mut child, ready) =
        crate::spawn_ready(&["sandbox", "--tls", "--listen", "127.0.0.1:0"]).await;
    let ca_file = ready["ca_file"].as_str().unwrap().to_owned();
    let base_url = ready["base_url"].as_str().unwrap();
    let answer = trusting_only(&ca_file)
        .get(format!("{base_url}/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(&ca_file).exists(), "{ca_file}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_tls_key_file_or_a_certificate_file_without_a_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let key = dir.path().join("key.pem");
    let listen = ["sandbox", "--listen", "127.0.0.1:0", "--tls-cert"];
    let mut argv = args(&listen);
    argv.push(cert.display().to_string());
    argv.extend(["--tls-key".to_owned(), key.display().to_string()]);

    let out = run(argv.clone(), None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read TLS key file {}", key.display())),
        "{stderr}"
    );

    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n").unwrap();
    let out = run(argv, None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("TLS certificate file {}", cert.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c2VjcmV0") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
