//! im-api over HTTP: gateway checks, strict send validation, de-duplication,
//! the messages page and the fault API.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::codec::ticket_guard_headers;
use tiktok_dm_proto::ids::ConversationShortId;
use tiktok_dm_proto::schema::{ExtendedEntry, Request, Response};
use tiktok_dm_proto::status::{SendRejection, classify_send_response};
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{alice, alter, assert_refused, http, new_id, send_request, send_request_to};

async fn post(
    sandbox: &TestSandbox,
    session: Option<&str>,
    query: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = http()
        .post(format!("{}/v1/message/send?{query}", sandbox.base_url()))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if let Some(s) = session {
        req = req.header("cookie", format!("ttwid=x; sessionid={s}"));
    }
    req.send().await.unwrap()
}

async fn im(sandbox: &TestSandbox, session: &str, request: &Request) -> Response {
    let resp = post(
        sandbox,
        Some(session),
        "aid=1988&device_platform=web_pc",
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    Response::decode(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn requests_without_the_web_context_or_a_session_are_refused_at_the_gateway() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let body = send_request(&sandbox, &a, 0, 10001, &new_id(1)).encode_to_vec();
    let bare = Response::decode(
        &post(&sandbox, Some(&a.session), "", body.clone())
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (bare.status_code, bare.cmd, bare.sequence_id),
        (Some(200001), None, None)
    );
    assert_eq!(bare.log_id.as_deref().map(str::len), Some(34));
    let anonymous = Response::decode(
        &post(&sandbox, None, "aid=1988", body)
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(anonymous.status_code, Some(200005));
    let wrong_type = http()
        .post(format!("{}/v1/message/send?aid=1988", sandbox.base_url()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn a_valid_send_is_answered_like_tiktok_and_a_repeat_gets_the_same_answer() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let request = send_request(&sandbox, &a, 0, 10001, &new_id(2));
    let first = im(&sandbox, &a.session, &request).await;
    assert_eq!(first.sequence_id, Some(10001));
    assert_eq!(first.error_desc.as_deref(), Some("OK"));
    assert_eq!(first.own_user_id, Some(a.uid.get()));
    assert_eq!(first.server_region.as_deref(), Some("US-TTP"));
    assert!(first.request_arrived_time.is_some() && first.server_execution_end_time.is_some());
    let accepted = classify_send_response(&first).unwrap();
    let again = im(&sandbox, &a.session, &request).await;
    assert_eq!(
        classify_send_response(&again).unwrap().server_message_id,
        accepted.server_message_id
    );
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn the_working_clients_text_send_is_accepted() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let id = new_id(12);
    let mut request = send_request(&sandbox, &a, 0, 10009, &id);
    request.sdk_version = Some("1.6.0".into());
    request.build_number = Some(Default::default());
    request.headers = vec![
        ExtendedEntry::new("aid", "1988"),
        ExtendedEntry::new("app_name", "tiktok_web"),
        ExtendedEntry::new("device_platform", "web_pc"),
    ];
    request
        .headers
        .extend(ticket_guard_headers("BHsandboxPublicKeyBase64=="));
    let request = alter(request, |body| {
        // `s:mentioned_users` with its value field left out altogether.
        body.ext[0] = ExtendedEntry {
            key: Some("s:mentioned_users".into()),
            ..ExtendedEntry::default()
        };
    });
    let query = "msToken=tok&aid=1988&version_code=1.0.0&app_name=tiktok_web\
                 &device_platform=web_pc&ztca-version=1&ztca-dpop=eyJhbGciOiJFUzI1NiJ9.e30.sig\
                 &X-Bogus=DFSzswVLQbbANrOCtZ";
    let response = Response::decode(
        &post(&sandbox, Some(&a.session), query, request.encode_to_vec())
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
    assert_eq!(
        classify_send_response(&response)
            .unwrap()
            .client_message_id
            .as_deref(),
        Some(id.as_str())
    );
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn malformed_sends_are_rejected_with_a_reason() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let c = sandbox.handle.seed().conversations[0].clone();
    let mut cases: Vec<(Request, i32, &str)> = Vec::new();

    let wrong_short = send_request_to(
        &a,
        &c.conversation_id,
        ConversationShortId::new(42).unwrap(),
        1,
        &new_id(3),
        r#"{"aweType":0,"text":"x"}"#,
    );
    cases.push((wrong_short, 4, "conversation_short_id does not match"));
    let not_json = send_request_to(
        &a,
        &c.conversation_id,
        c.conversation_short_id,
        2,
        &new_id(4),
        "hello",
    );
    cases.push((not_json, 4, "not a JSON object"));
    let too_long = format!(r#"{{"aweType":0,"text":"{}"}}"#, "x".repeat(6001));
    cases.push((
        send_request_to(
            &a,
            &c.conversation_id,
            c.conversation_short_id,
            3,
            &new_id(5),
            &too_long,
        ),
        4,
        "longer than 6000",
    ));
    let bad_id = alter(send_request(&sandbox, &a, 0, 4, &new_id(6)), |b| {
        b.client_message_id = Some("not-a-uuid".into());
    });
    cases.push((bad_id, 4, "not a lowercase UUID"));
    let ext_mismatch = alter(send_request(&sandbox, &a, 0, 5, &new_id(7)), |b| {
        b.ext.clear()
    });
    cases.push((ext_mismatch, 4, "s:client_message_id"));
    let mut wrong_device = send_request(&sandbox, &a, 0, 6, &new_id(8));
    wrong_device.device_id = Some("123".into());
    cases.push((wrong_device, 4, "device_id does not match"));
    let unknown = tiktok_dm_proto::ids::ConversationId::parse("0:1:1:2").unwrap();
    cases.push((
        send_request_to(&a, &unknown, c.conversation_short_id, 7, &new_id(9), "{}"),
        3,
        "CONVERSATION_NOT_FOUND",
    ));

    for (request, status, reason) in cases {
        assert_refused(&im(&sandbox, &a.session, &request).await, status, reason);
    }
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn a_sender_outside_the_conversation_gets_send_status_1() {
    let sandbox = spawn_sandbox().await;
    let bob = sandbox.handle.account("bob").unwrap().clone();
    // Conversation 1 is alice and carol.
    let resp = im(
        &sandbox,
        &bob.session,
        &crate::send_request(&sandbox, &bob, 1, 10001, &new_id(10)),
    )
    .await;
    assert_eq!(resp.status_code, Some(0));
    let err = classify_send_response(&resp).unwrap_err();
    assert!(
        matches!(err, SendRejection::Business(ref b) if b.status == 1),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_messages_page_shows_the_user_only_when_logged_in() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let page = |cookie: &'static str| {
        let url = format!("{}/messages", sandbox.base_url());
        async move {
            http()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let logged_in = page("sessionid=sandbox-session-alice").await;
    assert!(
        logged_in.contains(&format!("\"uid\":\"{}\"", a.uid)),
        "{logged_in}"
    );
    assert!(logged_in.contains(&format!("\"wid\":\"{}\"", a.wid)));
    let logged_out = page("sessionid=nobody").await;
    assert!(!logged_out.contains("\"user\""), "{logged_out}");
}

#[tokio::test]
async fn faults_can_be_scripted_over_http() {
    let sandbox = spawn_sandbox().await;
    let url = format!("{}/_sandbox/faults", sandbox.base_url());
    let bad = http()
        .post(&url)
        .body("{\"fault\":\"explode\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // The error names the bad value and the faults there are.
    let said = bad.text().await.unwrap();
    assert!(
        said.contains("unknown variant `explode`") && said.contains("drop_acks"),
        "{said}"
    );
    let ok = http()
        .post(&url)
        .body(r#"[{"fault":"server_error","times":1},{"fault":"delay_acks","delay_ms":5}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let listed: serde_json::Value = http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse::<serde_json::Value>()
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let a = alice(&sandbox);
    let resp = im(
        &sandbox,
        &a.session,
        &send_request(&sandbox, &a, 0, 10001, &new_id(11)),
    )
    .await;
    assert_eq!(resp.status_code, Some(6));
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 204);
    let listed: serde_json::Value = http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse::<serde_json::Value>()
        .unwrap();
    assert!(listed.as_array().unwrap().is_empty());
}
