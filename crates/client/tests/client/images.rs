//! Image DMs end to end: upload pipeline, sandbox checks, faults, ordering.

use tiktok_dm_client::compose::{Kind, Outgoing};
use tiktok_dm_client::image::{DEFAULT_IMAGE_LIMIT, Image};
use tiktok_dm_client::{Error, RetryClass, TransportMode};
use tiktok_dm_test_support::{noise_png, spawn_sandbox};

use crate::{alice_bob, alice_carol, connect};

fn image(bytes: &[u8]) -> Image {
    Image::from_bytes(bytes.to_vec(), DEFAULT_IMAGE_LIMIT).unwrap()
}

/// The path of the image a received message names.
fn path_of(m: &tiktok_dm_sandbox::ReceivedMessage) -> String {
    m.image.as_ref().expect("an image message").path.clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn an_image_is_uploaded_encrypted_and_sent_as_a_private_image() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    let png = noise_png(40, 30, 1);
    let sent = session
        .send_image(&alice_bob(&sandbox), image(&png))
        .await
        .unwrap();
    let received = sandbox.handle.messages();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m.message_type, 1802);
    assert_eq!(m.client_message_id, sent.client_message_id.as_str());
    let shown = m.image.as_ref().unwrap();
    assert_eq!((shown.width, shown.height), (40, 30));
    assert_eq!(shown.size, png.len() as u64);
    assert_eq!(
        shown.sha256,
        sha256_hex(&png),
        "the sandbox opened what was sent"
    );
    assert_eq!(
        sandbox.handle.object(&path_of(m)).unwrap(),
        png,
        "the stored object decrypts to the input"
    );
    let blob = sandbox.handle.encrypted_object(&path_of(m)).unwrap();
    assert_eq!(blob.len(), png.len() + 12 + 16, "nonce, ciphertext, tag");
    assert!(
        !blob.windows(16).any(|w| png.starts_with(w)),
        "stored encrypted"
    );
}

#[tokio::test]
async fn a_file_over_the_part_threshold_goes_up_in_parts() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    // 1,900 x 1,900 noise is about 10.8 MB: three parts of at most 5 MiB.
    let png = noise_png(1900, 1900, 2);
    assert!(png.len() as u64 > 10 * 1024 * 1024, "{} bytes", png.len());
    session
        .send_image(&alice_bob(&sandbox), image(&png))
        .await
        .unwrap();
    let m = &sandbox.handle.messages()[0];
    assert_eq!(sandbox.handle.object(&path_of(m)).unwrap(), png);
}

#[tokio::test]
async fn transient_upload_faults_are_retried() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.storage_down(1);
    sandbox.handle.crc_mismatch(1);
    sandbox.handle.commit_failure(1);
    session
        .send_image(&alice_bob(&sandbox), image(&noise_png(8, 8, 3)))
        .await
        .unwrap();
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn permanent_upload_faults_fail_without_sending() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    let target = alice_bob(&sandbox);

    sandbox.handle.signature_mismatch(1);
    let err = session
        .send_image(&target, image(&noise_png(8, 8, 4)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Upload {
                step: "apply",
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");

    sandbox.handle.storage_down(10);
    let err = session
        .send_image(&target, image(&noise_png(8, 8, 5)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Upload { step: "upload", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.retry_class(),
        RetryClass::Retryable,
        "still down after three attempts"
    );
    sandbox.handle.clear_faults();

    sandbox.handle.reject_credentials(1);
    let fresh = connect(&sandbox, TransportMode::Ws).await;
    let err = fresh
        .send_image(&target, image(&noise_png(8, 8, 6)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert!(
        sandbox.handle.messages().is_empty(),
        "nothing is sent without a commit"
    );
}

#[tokio::test]
async fn expired_credentials_are_replaced_once() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    let target = alice_bob(&sandbox);
    session
        .send_image(&target, image(&noise_png(8, 8, 7)))
        .await
        .unwrap();
    sandbox.handle.expire_upload_credentials();
    session
        .send_image(&target, image(&noise_png(8, 8, 8)))
        .await
        .unwrap();
    assert_eq!(sandbox.handle.messages().len(), 2);
}

#[tokio::test]
async fn upload_credentials_are_reused_until_they_expire() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    let target = alice_bob(&sandbox);
    session
        .send_image(&target, image(&noise_png(8, 8, 20)))
        .await
        .unwrap();
    // A second cmd 2059 would be refused; the cached credentials ask none.
    sandbox.handle.reject_credentials(1);
    session
        .send_image(&target, image(&noise_png(8, 8, 21)))
        .await
        .unwrap();
    sandbox.handle.clear_faults();

    // Credentials within the margin of their expiry (the sandbox's last an
    // hour) are not reused: each image asks again.
    let upload = tiktok_dm_client::UploadConfig {
        credential_margin: std::time::Duration::from_secs(2 * 3600),
        ..Default::default()
    };
    let config = crate::config(&sandbox, crate::ALICE, TransportMode::Http).upload(upload);
    let eager = tiktok_dm_client::Session::connect(config.build().unwrap())
        .await
        .unwrap();
    eager
        .send_image(&target, image(&noise_png(8, 8, 22)))
        .await
        .unwrap();
    sandbox.handle.reject_credentials(1);
    let err = eager
        .send_image(&target, image(&noise_png(8, 8, 23)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert_eq!(sandbox.handle.messages().len(), 3);
}

#[tokio::test]
async fn over_http_too_an_image_goes_as_a_private_image() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    let png = noise_png(12, 9, 9);
    session
        .send_image(&alice_bob(&sandbox), image(&png))
        .await
        .unwrap();
    let m = &sandbox.handle.messages()[0];
    assert_eq!(m.message_type, 1802);
    assert_eq!(sandbox.handle.object(&path_of(m)).unwrap(), png);
}

#[tokio::test]
async fn text_and_image_go_image_first_and_a_failed_text_is_reported() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    let target = alice_bob(&sandbox);
    let both = Outgoing::new(Some("caption"), Some(image(&noise_png(8, 8, 10)))).unwrap();
    let outcome = session.send_outgoing(&target, both).await;
    assert!(outcome.is_success());
    let kinds: Vec<Kind> = outcome.sent.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [Kind::Image, Kind::Text]);
    let types: Vec<i32> = sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.message_type)
        .collect();
    assert_eq!(types, [1802, 7]);

    // In a message request only one message may go before the receiver accepts:
    // the image is delivered, the text is refused with 7193.
    let request = alice_carol(&sandbox);
    let both = Outgoing::new(Some("second caption"), Some(image(&noise_png(8, 8, 11)))).unwrap();
    let outcome = session.send_outgoing(&request, both).await;
    assert_eq!(outcome.sent.len(), 1);
    assert_eq!(outcome.sent[0].0, Kind::Image);
    let (kind, err) = outcome.failed.unwrap();
    assert_eq!(kind, Kind::Text);
    assert_eq!(err.tiktok_code(), Some(7193));
}

#[test]
fn nothing_to_send_is_refused_before_sending() {
    let err = Outgoing::new(Some("  "), None).unwrap_err();
    assert_eq!(err.to_string(), "either text or image must be provided");
}
