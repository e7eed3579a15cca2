//! The request builder reproduces the capture; the classifier reads real answers.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::{SendParams, SplicedField, send_message_request};
use tiktok_dm_proto::content::MessageText;
use tiktok_dm_proto::ids::{ClientMessageId, ConversationId, ConversationShortId, DeviceId};
use tiktok_dm_proto::schema::{Request, Response};
use tiktok_dm_proto::status::{RetryClass, SendRejection, classify_send_response};

use crate::vectors::load;

#[test]
fn building_the_captured_send_gives_the_captured_bytes() {
    let captured = load("tiktok_web_send_text_request_http_2026");
    let decoded = Request::decode(&captured).unwrap();
    let conversation =
        ConversationId::parse("0:1:7366359960223482885:7664958044560016398").unwrap();
    let client_id = ClientMessageId::parse("5c822568-65d8-451b-a38a-a9e046268f5f").unwrap();
    let device = DeviceId::parse("7669334412366218765").unwrap();
    let text = MessageText::parse("probe6").unwrap();
    let params = SendParams {
        conversation_id: &conversation,
        conversation_short_id: ConversationShortId::parse("7669414245201953037").unwrap(),
        inbox_type: 3,
        content: &text.content_json(),
        message_type: 7,
        client_message_id: &client_id,
        sequence_id: 10033,
        // The ticket-guard headers are session material we do not generate, so the
        // header list is taken from the capture; everything else is built.
        context_headers: decoded.headers.clone(),
        device_id: &device,
    };
    let built = send_message_request(params.clone());
    assert!(
        built.encode_to_vec() == captured,
        "built request differs from the capture"
    );
    // As the client sends it: the headers encoded once and spliced in.
    let bare = send_message_request(SendParams {
        context_headers: Vec::new(),
        ..params
    });
    assert!(
        SplicedField::request_headers(&decoded.headers).encode_into(&bare) == captured,
        "built request with spliced headers differs from the capture"
    );
}

#[test]
fn the_7193_answer_is_a_permanent_business_rejection_with_tiktoks_tip() {
    let response = Response::decode(&load("tiktok_web_send_response_7193_2026")).unwrap();
    let err = classify_send_response(&response).unwrap_err();
    let SendRejection::Business(b) = &err else {
        panic!("expected business rejection, got {err:?}")
    };
    assert_eq!((b.status, b.check_code, b.code), (3, 2, Some(7193)));
    assert_eq!(b.scene.as_deref(), Some("message_request_limit"));
    assert_eq!(
        b.tips.as_deref(),
        Some("You can only send up to 1 message before this user accepts your message request.")
    );
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert_eq!(err.tiktok_code(), Some(7193));
    assert!(
        err.to_string()
            .contains("You can only send up to 1 message"),
        "{err}"
    );
}

#[test]
fn the_200001_answer_is_a_gateway_rejection() {
    let response = Response::decode(&load("tiktok_web_gateway_error_200001_a")).unwrap();
    assert_eq!(
        classify_send_response(&response).unwrap_err(),
        SendRejection::GatewayRejected
    );
}

#[test]
fn status_codes_map_to_retry_classes() {
    let cases = [
        (1, RetryClass::Permanent),
        (100, RetryClass::Permanent),
        (200005, RetryClass::Permanent),
        (6, RetryClass::Retryable),
        (500, RetryClass::Retryable),
        (
            429,
            RetryClass::RetryAfter(tiktok_dm_proto::status::DEFAULT_RATE_LIMIT_BACKOFF),
        ),
    ];
    for (code, class) in cases {
        let response = Response {
            status_code: Some(code),
            ..Response::default()
        };
        let err = classify_send_response(&response).unwrap_err();
        assert_eq!(err.retry_class(), class, "status {code}");
    }
    let invalid = classify_send_response(&Response {
        status_code: Some(1),
        ..Response::default()
    })
    .unwrap_err();
    assert!(matches!(
        invalid,
        SendRejection::InvalidSession { status_code: 1 }
    ));
    let empty = classify_send_response(&Response {
        status_code: Some(0),
        ..Response::default()
    })
    .unwrap_err();
    assert_eq!(empty.retry_class(), RetryClass::Ambiguous);
}
