//! What the servers name for an upload is followed only when safe: hosts at
//! non-public addresses are refused, names are escaped in URLs, and answers
//! are read up to a cap.

use tiktok_dm_client::image::{DEFAULT_IMAGE_LIMIT, Image};
use tiktok_dm_client::{Error, RetryClass, Session, TransportMode, UploadConfig};
use tiktok_dm_test_support::{TestSandbox, noise_png, spawn_sandbox};

use crate::{ALICE, alice_bob, config, connect};

fn image(bytes: &[u8]) -> Image {
    Image::from_bytes(bytes.to_vec(), DEFAULT_IMAGE_LIMIT).unwrap()
}

/// Sends a small image and expects a permanent failure at Apply whose
/// message contains `says`, with nothing sent.
async fn refused_at_apply(sandbox: &TestSandbox, session: &Session, says: &str) {
    let err = session
        .send_image(&alice_bob(sandbox), image(&noise_png(8, 8, 40)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Upload { step: "apply", .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_class(), RetryClass::Permanent, "{err}");
    assert!(err.to_string().contains(says), "{err}");
    assert!(sandbox.handle.messages().is_empty(), "nothing is sent");
}

#[tokio::test]
async fn an_upload_host_named_at_a_link_local_address_is_refused_before_any_request() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    sandbox.handle.name_upload_host("http://169.254.169.254", 1);
    refused_at_apply(&sandbox, &session, "uploads go only to public addresses").await;
}

#[tokio::test]
async fn an_upload_host_whose_name_resolves_to_loopback_is_refused() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    // The sandbox itself, by a name other than the configured one: the name
    // resolves to loopback only, so the storage node is not contacted.
    let by_name = format!("localhost:{}", sandbox.addr.port());
    sandbox.handle.name_upload_host(&by_name, 1);
    let err = session
        .send_image(&alice_bob(&sandbox), image(&noise_png(8, 8, 41)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Upload { step: "upload", .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_class(), RetryClass::Permanent, "{err}");
    assert!(
        err.to_string().contains("resolves to no public address"),
        "{err}"
    );
    assert!(sandbox.handle.messages().is_empty(), "nothing is sent");
}

#[tokio::test]
async fn an_upload_answer_over_the_cap_is_not_read() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    sandbox.handle.large_upload_answer(2 * 1024 * 1024, 1);
    refused_at_apply(&sandbox, &session, "an answer over 1048576 bytes").await;
}

#[tokio::test]
async fn store_uris_and_upload_ids_that_need_escaping_reach_the_storage_node_intact() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    sandbox.handle.odd_upload_names(1);
    let png = noise_png(16, 16, 42);
    session
        .send_image(&alice_bob(&sandbox), image(&png))
        .await
        .unwrap();
    let path = sandbox.handle.messages()[0].image.clone().unwrap().path;
    assert!(path.contains("odd name?x=1#y&z%"), "{path}");
    assert_eq!(sandbox.handle.object(&path).unwrap(), png);

    // In parts: the upload id (with `&` and `#` in it) is escaped too.
    let upload = UploadConfig {
        part_threshold: 5 * 1024 * 1024,
        ..UploadConfig::default()
    };
    let parts = Session::connect(
        config(&sandbox, ALICE, TransportMode::Http)
            .upload(upload)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    sandbox.handle.odd_upload_names(1);
    let png = noise_png(1400, 1400, 43);
    assert!(png.len() > 5 * 1024 * 1024, "{} bytes", png.len());
    parts
        .send_image(&alice_bob(&sandbox), image(&png))
        .await
        .unwrap();
    let path = sandbox.handle.messages()[1].image.clone().unwrap().path;
    assert!(path.contains("odd name"), "{path}");
    assert_eq!(sandbox.handle.object(&path).unwrap(), png);
}
