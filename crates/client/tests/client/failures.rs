//! Each failure maps to its typed error and retry class.

use tiktok_dm_client::{Error, RetryClass, SendRejection, Session, TransportMode};
use tiktok_dm_test_support::spawn_sandbox;

use crate::{alice_bob, alice_carol, config, connect};

#[tokio::test]
async fn an_unknown_session_is_rejected_when_connecting() {
    let sandbox = spawn_sandbox().await;
    let err = Session::connect(
        config(&sandbox, "not-a-real-session", TransportMode::Auto)
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidSession(_)), "{err:?}");
    assert_eq!(err.code(), "session_rejected");
    assert!(!err.to_string().contains("not-a-real-session"));
}

#[tokio::test]
async fn a_refused_handshake_for_the_session_is_fatal() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.invalid_session(1);
    let err = Session::connect(
        config(&sandbox, crate::ALICE, TransportMode::Ws)
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidSession(_)), "{err:?}");
    assert_eq!(err.retry_class(), RetryClass::Permanent);
}

#[tokio::test]
async fn status_1_on_a_send_is_an_invalid_session() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.invalid_session(1);
    let err = session
        .send_text(&alice_bob(&sandbox), "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected(SendRejection::InvalidSession { status_code: 1 })
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "session_rejected");
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn the_second_message_into_an_unaccepted_request_gets_7193_with_tiktoks_tip() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Auto).await;
    let target = alice_carol(&sandbox);
    session
        .send_text(&target, "first message is allowed")
        .await
        .unwrap();
    let err = session
        .send_text(&target, "second is not")
        .await
        .unwrap_err();
    let Error::Rejected(SendRejection::Business(b)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(b.code, Some(7193));
    assert_eq!(err.code(), "business_rejected");
    assert_eq!(err.tiktok_code(), Some(7193));
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert!(
        err.to_string()
            .contains("You can only send up to 1 message"),
        "{err}"
    );
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn a_gateway_rejection_is_reported_as_200001() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    sandbox.handle.gateway_rejection(1);
    let err = session
        .send_text(&alice_bob(&sandbox), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "gateway_rejected");
    assert_eq!(err.tiktok_code(), Some(200001));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Ws).await;
    sandbox.handle.rate_limit(1);
    let err = session
        .send_text(&alice_bob(&sandbox), "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err.retry_class(), RetryClass::RetryAfter(_)),
        "{err:?}"
    );
    assert_eq!(err.code(), "rate_limited");
    sandbox.handle.server_error(1);
    let err = session
        .send_text(&alice_bob(&sandbox), "x")
        .await
        .unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Retryable);
    assert_eq!(err.code(), "upstream_error");
    sandbox.handle.http_status(502, 1);
    let http = connect(&sandbox, TransportMode::Http).await;
    let err = http.send_text(&alice_bob(&sandbox), "x").await.unwrap_err();
    assert!(matches!(err, Error::HttpStatus { status: 502 }), "{err:?}");
    assert_eq!(err.retry_class(), RetryClass::Retryable);
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn a_timeout_is_ambiguous_and_a_retry_with_the_same_id_is_not_a_duplicate() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    let target = alice_bob(&sandbox);
    let text = tiktok_dm_client::proto::content::MessageText::parse("maybe delivered").unwrap();
    let id = Session::new_client_message_id();
    sandbox.handle.drop_acks(1);
    let err = session
        .send_text_with_id(&target, &text, &id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert_eq!(err.retry_class(), RetryClass::Ambiguous);
    assert_eq!(err.code(), "outcome_unknown");
    assert_eq!(
        sandbox.handle.messages().len(),
        1,
        "the message was in fact stored"
    );

    let sent = session
        .send_text_with_id(&target, &text, &id)
        .await
        .unwrap();
    let received = sandbox.handle.messages();
    assert_eq!(
        received.len(),
        1,
        "the retry with the same id was de-duplicated"
    );
    assert_eq!(received[0].server_message_id, sent.server_message_id.get());
}

#[tokio::test]
async fn a_sandbox_that_is_down_is_a_connection_failure() {
    let mut sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    let target = alice_bob(&sandbox);
    sandbox.stop().await;
    let err = session.send_text(&target, "nobody home").await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert_eq!(err.code(), "connection_failed");
    assert_eq!(err.retry_class(), RetryClass::Retryable);
}

#[tokio::test]
async fn invalid_text_is_refused_before_anything_is_sent() {
    let sandbox = spawn_sandbox().await;
    let session = connect(&sandbox, TransportMode::Http).await;
    let err = session
        .send_text(&alice_bob(&sandbox), "   ")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    let err = session
        .send_text(&alice_bob(&sandbox), &"x".repeat(6001))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("6000"), "{err}");
    assert!(sandbox.handle.messages().is_empty());
}
