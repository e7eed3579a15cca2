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

/// The synthetic push's `Response`, put in a downlink frame with `encoding`.
fn push_frame(encoding: Option<&str>) -> String {
    use base64::Engine as _;
    use tiktok_dm_client::proto::Message as _;
    use tiktok_dm_client::proto::codec::{frame_response, gzip, lz4};
    use tiktok_dm_client::proto::schema::Frame;
    let b64 = std::fs::read_to_string(vector("tiktok_web_ws_inbound_dm_synthetic.b64")).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let mut frame = Frame::decode(&bytes).unwrap();
    let plain = frame_response(&frame).unwrap().encode_to_vec();
    let payload = match encoding {
        Some("__lz4") => lz4(&plain),
        Some("gzip") => gzip(&plain),
        _ => plain,
    };
    frame.payload_encoding = encoding.map(Into::into);
    frame.payload_type = Some("pb".into());
    frame.payload = Some(tiktok_dm_client::proto::wire::Blob(payload));
    base64::engine::general_purpose::STANDARD.encode(frame.encode_to_vec())
}

#[tokio::test]
async fn a_downlink_frame_reads_as_a_response_down_to_the_message_in_every_encoding() {
    for encoding in [Some("__lz4"), Some("gzip"), None] {
        let out = run(
            args(&["decode", "--as", "frame", "-"]),
            Some(push_frame(encoding)),
        )
        .await;
        assert!(
            out.status.success(),
            "{encoding:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["payload_decoded_as"], "Response", "{encoding:?}");
        let message = &v["payload_decoded"]["body"]["has_new_message_notify"][0]["message"];
        assert!(
            message["content"]
                .as_str()
                .is_some_and(|c| c.contains("aweType")),
            "{encoding:?}: {message}"
        );
        assert!(message["sender"].is_string() || message["sender"].is_number());
    }
}

#[tokio::test]
async fn an_uplink_frame_reads_as_the_request_it_carries() {
    let path = vector("tiktok_web_ws_uplink_cmd610_frame_a.b64");
    let out = run(args(&["decode", "--as", "frame", &path]), None).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["payload_decoded_as"], "Request");
    assert_eq!(v["payload_decoded"]["cmd"], 610);
}

#[test]
fn a_reader_that_goes_away_ends_decode_quietly() {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = crate::command()
        .args(["decode", "--as", "frame", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head` that has already stopped reading: close our end first, then
    // give the input, so the output meets a closed pipe.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(push_frame(Some("__lz4")).as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
