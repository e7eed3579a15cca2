//! Received images: fetched with the session from the URL the message
//! names, opened with its key, refused when the key does not open them.

use serde_json::{Value, json};
use tiktok_dm_client::{Error, Event, ReceivedImage, Session, TransportMode};
use tiktok_dm_test_support::{TestSandbox, noise_png, spawn_sandbox};

use crate::{alice_bob, config, connect};

/// bob sends alice `png` through `/_sandbox/inbound`.
async fn bob_sends_image(sandbox: &TestSandbox, png: &[u8]) {
    use base64::Engine as _;
    let body = json!({
        "from": "bob",
        "conversation_id": alice_bob(sandbox).conversation_id.as_str(),
        "image": base64::engine::general_purpose::STANDARD.encode(png),
    });
    let answer = reqwest::Client::new()
        .post(format!("{}/_sandbox/inbound", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["messages"][0]["kind"], "image");
}

/// The image of the newest message in alice's conversation with bob.
async fn newest_image(session: &Session, sandbox: &TestSandbox) -> ReceivedImage {
    let target = alice_bob(sandbox);
    let page = session
        .history(
            target.conversation_id.as_str(),
            Some(target.conversation_short_id.get()),
            None,
            10,
        )
        .await
        .unwrap();
    page.events
        .into_iter()
        .find_map(|e| match e {
            Event::MessageReceived(m) => m.image,
            _ => None,
        })
        .expect("an image in the history")
}

#[tokio::test]
async fn a_received_image_is_fetched_with_the_session_and_opened_to_the_bytes_sent() {
    let sandbox = spawn_sandbox().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let png = noise_png(33, 21, 4);
    bob_sends_image(&sandbox, &png).await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let image = newest_image(&alice, &sandbox).await;
    assert!(image.urls[0].contains("/im/media/"), "{:?}", image.urls);
    assert_eq!(alice.fetch_image(&image).await.unwrap(), png);
}

#[tokio::test]
async fn a_blob_that_does_not_open_under_the_key_is_refused_clearly() {
    let sandbox = spawn_sandbox().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    bob_sends_image(&sandbox, &noise_png(8, 8, 2)).await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let mut image = newest_image(&alice, &sandbox).await;
    let right_key = image.decrypt_key.clone();
    image.decrypt_key = "11".repeat(32);
    let err = alice.fetch_image(&image).await.unwrap_err();
    assert!(matches!(err, Error::MediaInvalid(_)), "{err:?}");
    let said = err.to_string();
    assert!(said.contains("tag does not verify"), "{said}");
    assert!(
        !said.contains(&right_key) && !said.contains("im/media"),
        "{said}"
    );
}

#[tokio::test]
async fn media_is_refused_past_the_image_limit_and_to_a_non_participant() {
    let sandbox = spawn_sandbox().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let png = noise_png(40, 40, 3);
    bob_sends_image(&sandbox, &png).await;
    let alice = connect(&sandbox, TransportMode::Http).await;
    let image = newest_image(&alice, &sandbox).await;

    let limit = png.len() as u64 - 1;
    let small = Session::connect(
        config(&sandbox, crate::ALICE, TransportMode::Http)
            .image_limit(limit)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let err = small.fetch_image(&image).await.unwrap_err();
    assert!(matches!(err, Error::MediaInvalid(_)), "{err:?}");
    // Exactly at the limit, the blob (image + 28) is read.
    let exact = Session::connect(
        config(&sandbox, crate::ALICE, TransportMode::Http)
            .image_limit(png.len() as u64)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(exact.fetch_image(&image).await.unwrap(), png);

    // carol is in no conversation with this image: the sandbox refuses her.
    let carol = Session::connect(
        config(&sandbox, "sandbox-session-carol", TransportMode::Http)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let err = carol.fetch_image(&image).await.unwrap_err();
    assert!(matches!(err, Error::HttpStatus { status: 403 }), "{err:?}");

    let mut elsewhere = image.clone();
    elsewhere.urls = vec!["file:///etc/passwd".into()];
    assert!(matches!(
        alice.fetch_image(&elsewhere).await,
        Err(Error::MediaInvalid(_))
    ));
    // A private address other than the configured host never gets the
    // cookie: refused before any connection (a listener there would see it).
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut private = image.clone();
    private.urls = vec![format!("http://127.0.0.2:{port}/blob")];
    let err = alice.fetch_image(&private).await.unwrap_err();
    assert!(matches!(err, Error::MediaInvalid(_)), "{err:?}");
    assert!(
        listener.accept().is_err(),
        "nothing connected to the private host"
    );
}
