//! `tiktok-dm decode` on the captured vectors.

use std::path::Path;

use crate::{args, run};

fn vector(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/testdata/vectors")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test]
async fn reencoding_a_captured_request_gives_back_its_base64() {
    let path = vector("tiktok_web_send_text_request_http_2026.b64");
    let out = run(
        args(&["decode", "--as", "request", "--reencode", &path]),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        original.trim()
    );
}

#[tokio::test]
async fn a_frame_decodes_to_json_with_its_payload() {
    let path = vector("tiktok_web_ws_inbound_dm_synthetic.b64");
    let out = run(args(&["decode", "--as", "frame", &path]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service"], 20032);
    assert_eq!(v["payload_decoded"]["cmd"], 500);
}

#[tokio::test]
async fn raw_bytes_on_stdin_are_accepted_and_garbage_is_a_clear_error() {
    let out = run(
        args(&["decode", "--as", "response", "--reencode", "-"]),
        Some("\u{8}\u{1}".into()),
    )
    .await;
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "CAE=");
    let out = run(
        args(&["decode", "--as", "response", "-"]),
        Some("\u{8}".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid Response"));
}
