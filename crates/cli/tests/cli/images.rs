//! `tiktok-dm send` with images: every input form, bytes compared with what the
//! sandbox stored, and the input errors.

use base64::Engine as _;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{json, run, send_args_with};

fn png(w: u32, h: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i % 253) as u8).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    out
}

fn stored(sandbox: &TestSandbox, output: &serde_json::Value) -> Vec<u8> {
    let server_id = output["messages"][0]["server_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = sandbox
        .handle
        .messages()
        .into_iter()
        .find(|m| m.server_message_id.to_string() == server_id)
        .unwrap();
    assert_eq!(m.message_type, 1802);
    sandbox
        .handle
        .object(&m.image.as_ref().unwrap().path)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_file_with_a_caption_sends_the_image_then_the_text() {
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    let bytes = png(30, 20);
    std::fs::write(&path, &bytes).unwrap();
    let out = run(
        send_args_with(
            &sandbox,
            &["--image", path.to_str().unwrap(), "--text", "caption"],
        ),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["messages"][0]["kind"], "image");
    assert_eq!(v["messages"][1]["kind"], "text");
    assert_eq!(v["usage"]["messages"], 2);
    assert_eq!(v["usage"]["image_bytes"], bytes.len());
    assert_eq!(stored(&sandbox, &v), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_from_stdin_or_base64_arrives_byte_for_byte() {
    let sandbox = spawn_sandbox().await;
    let bytes = png(16, 16);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);

    let out = tokio::task::spawn_blocking({
        let argv = send_args_with(&sandbox, &["--image", "-"]);
        let bytes = bytes.clone();
        move || {
            use std::io::Write as _;
            let mut child = crate::command()
                .args(&argv)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&sandbox, &json(&out)), bytes);

    let out = run(send_args_with(&sandbox, &["--image-base64", &b64]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&sandbox, &json(&out)), bytes);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.txt");
    std::fs::write(&file, format!("data:image/png;base64,{b64}\n")).unwrap();
    let out = run(
        send_args_with(
            &sandbox,
            &["--image-base64", &format!("@{}", file.display())],
        ),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&sandbox, &json(&out)), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_images_exit_2_with_what_was_found() {
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.png");
    std::fs::write(&text_file, "these are notes, not a picture").unwrap();
    let big = dir.path().join("big.png");
    std::fs::write(&big, png(64, 64)).unwrap();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            send_args_with(&sandbox, &["--image", text_file.to_str().unwrap()]),
            "image_invalid",
            "not an image (text)",
        ),
        (
            send_args_with(
                &sandbox,
                &["--image", big.to_str().unwrap(), "--image-limit", "100"],
            ),
            "image_too_large",
            "the limit is 100 bytes",
        ),
        (
            send_args_with(&sandbox, &["--image-base64", "iVBORw0KGgo*AAA"]),
            "image_invalid",
            "invalid base64 at character 11",
        ),
        (
            send_args_with(&sandbox, &["--image", "/nonexistent/photo.jpg"]),
            "invalid_input",
            "cannot read image file /nonexistent/photo.jpg",
        ),
        (
            send_args_with(&sandbox, &[]),
            "invalid_input",
            "either text or image must be provided",
        ),
        // Devices report no size: the bounded read stops past the limit.
        (
            send_args_with(&sandbox, &["--image", "/dev/zero", "--image-limit", "100"]),
            "image_too_large",
            "the limit is 100 bytes",
        ),
        (
            send_args_with(
                &sandbox,
                &["--image-base64", "@/dev/zero", "--image-limit", "100"],
            ),
            "invalid_input",
            "base64 file /dev/zero is larger than",
        ),
    ];
    for (argv, code, expected) in cases {
        let out = run(argv, None).await;
        assert_eq!(out.status.code(), Some(2), "{expected}");
        let v = json(&out);
        assert_eq!(v["error"]["code"], code, "{expected}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(expected),
            "{expected}: {v}"
        );
    }
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_refused_after_its_image_reports_the_partial_delivery() {
    let sandbox = spawn_sandbox().await;
    let c = &sandbox.handle.seed().conversations[1];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.png");
    std::fs::write(&path, png(8, 8)).unwrap();
    let mut argv = send_args_with(
        &sandbox,
        &["--image", path.to_str().unwrap(), "--text", "caption"],
    );
    argv[6] = c.conversation_id.to_string();
    argv[8] = c.conversation_short_id.to_string();
    let out = run(argv, None).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["success"], false);
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["kind"], "image");
    assert_eq!(v["error"]["failed_message"], "text");
    assert_eq!(v["error"]["tiktok_code"], 7193);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("the image was sent but the text was not"),
        "{v}"
    );
}
