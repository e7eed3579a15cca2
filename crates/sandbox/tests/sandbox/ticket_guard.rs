//! The strict ticket-guard check, off by default: an HTTP send must carry the
//! five `tt-ticket-guard-*` entries in order among its headers and carry a `ztca-dpop`
//! proof signed by their key for POST on the send URL.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use tiktok_dm_proto::codec::ticket_guard_headers;
use tiktok_dm_proto::schema::{Request, Response};
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::{alice, new_id, post_route, send_request};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32].into()).unwrap()
}

fn public(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().to_encoded_point(false).as_bytes())
}

fn b64(json: serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// A proof as the working client makes one, for `htu`, signed by `signer`,
/// naming `named`'s key in its header.
fn proof(signer: &SigningKey, named: &SigningKey, htu: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    proof_at(signer, named, htu, serde_json::json!(now))
}

/// [`proof`] issued at `iat`, whatever JSON value that is.
fn proof_at(signer: &SigningKey, named: &SigningKey, htu: &str, iat: serde_json::Value) -> String {
    let point = named.verifying_key().to_encoded_point(false);
    let header = b64(serde_json::json!({
        "alg": "ES256",
        "jwk": {"crv": "P-256", "kty": "EC",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())},
        "typ": "dpop+jwt",
    }));
    let payload = b64(serde_json::json!({"htm": "POST", "htu": htu, "iat": iat, "jti": "abc"}));
    let input = format!("{header}.{payload}");
    let signature: Signature = signer.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn guarded(sandbox: &TestSandbox, n: u8, key: &SigningKey) -> Request {
    let mut request = send_request(
        sandbox,
        &alice(sandbox),
        0,
        10001 + i64::from(n),
        &new_id(n),
    );
    request.headers.extend(ticket_guard_headers(&public(key)));
    request
}

async fn send(sandbox: &TestSandbox, request: &Request, dpop: Option<&str>) -> Response {
    let mut query =
        "aid=1988&version_code=1.0.0&app_name=tiktok_web&device_platform=web_pc".to_string();
    if let Some(dpop) = dpop {
        query.push_str("&ztca-version=1&ztca-dpop=");
        query.push_str(dpop);
    }
    let session = alice(sandbox).session;
    post_route(sandbox, &session, "v1/message/send", &query, request).await
}

fn refusal(response: &Response) -> String {
    assert_eq!(response.status_code, Some(200001), "{response:?}");
    response
        .error_desc
        .as_deref()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn without_the_strict_check_a_send_needs_no_ticket_guard() {
    let sandbox = spawn_sandbox().await;
    let bare = send_request(&sandbox, &alice(&sandbox), 0, 10001, &new_id(1));
    assert_eq!(send(&sandbox, &bare, None).await.status_code, Some(0));
}

#[tokio::test]
async fn with_the_strict_check_a_send_must_carry_a_valid_ticket_guard() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.require_ticket_guard(true);
    let htu = format!("{}/v1/message/send", sandbox.base_url());
    let k = key(7);

    let bare = send_request(&sandbox, &alice(&sandbox), 0, 10001, &new_id(1));
    let why = refusal(&send(&sandbox, &bare, Some(&proof(&k, &k, &htu))).await);
    assert!(why.contains("tt-ticket-guard"), "{why}");

    let why = refusal(&send(&sandbox, &guarded(&sandbox, 2, &k), None).await);
    assert!(why.contains("ztca-version"), "{why}");

    let other = key(8);
    let why = refusal(
        &send(
            &sandbox,
            &guarded(&sandbox, 3, &k),
            Some(&proof(&other, &other, &htu)),
        )
        .await,
    );
    assert!(why.contains("not the tt-ticket-guard public key"), "{why}");

    let why = refusal(
        &send(
            &sandbox,
            &guarded(&sandbox, 4, &k),
            Some(&proof(&other, &k, &htu)),
        )
        .await,
    );
    assert!(why.contains("does not verify"), "{why}");

    let elsewhere = format!("{}/v1/message/recall", sandbox.base_url());
    let why = refusal(
        &send(
            &sandbox,
            &guarded(&sandbox, 5, &k),
            Some(&proof(&k, &k, &elsewhere)),
        )
        .await,
    );
    assert!(why.contains("not POST to"), "{why}");

    let mut swapped = guarded(&sandbox, 6, &k);
    let n = swapped.headers.len();
    swapped.headers.swap(n - 1, n - 2);
    let why = refusal(&send(&sandbox, &swapped, Some(&proof(&k, &k, &htu))).await);
    assert!(why.contains("in order"), "{why}");
    assert!(
        sandbox.handle.messages().is_empty(),
        "nothing refused was stored"
    );

    let ok = send(
        &sandbox,
        &guarded(&sandbox, 9, &k),
        Some(&proof(&k, &k, &htu)),
    )
    .await;
    assert_eq!(ok.status_code, Some(0), "{ok:?}");
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn a_proof_issued_at_any_other_time_is_refused_without_harm() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.require_ticket_guard(true);
    let htu = format!("{}/v1/message/send", sandbox.base_url());
    let k = key(7);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let times = [
        serde_json::json!(now - 3600),
        serde_json::json!(now + 3600),
        serde_json::json!(i64::MIN),
        serde_json::json!(i64::MIN + now),
        serde_json::json!(i64::MAX),
    ];
    for (n, iat) in times.into_iter().enumerate() {
        let request = guarded(&sandbox, n as u8 + 1, &k);
        let why = refusal(
            &send(
                &sandbox,
                &request,
                Some(&proof_at(&k, &k, &htu, iat.clone())),
            )
            .await,
        );
        assert!(why.contains("issued at"), "{iat}: {why}");
    }
    let why = refusal(
        &send(
            &sandbox,
            &guarded(&sandbox, 9, &k),
            Some(&proof_at(&k, &k, &htu, serde_json::json!("soon"))),
        )
        .await,
    );
    assert!(why.contains("no iat"), "{why}");
    assert!(sandbox.handle.messages().is_empty());
}
