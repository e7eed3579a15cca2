//! `private_image` (1802) sends (PROTOCOL.md 10.3): accepted only for an
//! upload the sender committed with `cipher_v2` and a key that opens it;
//! listed with the decrypted image's hash; echoed with `content_pb` and a media
//! URL serving the encrypted blob to a participant's session.

use sha2::{Digest as _, Sha256};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd::WEB_API_QUERY;
use tiktok_dm_proto::codec::{PrivateImage, SendParams, frame_response, private_image_request};
use tiktok_dm_proto::schema::{MessageContent, Request, Response};
use tiktok_dm_sandbox::{Account, ReceivedImage};
use tiktok_dm_test_support::{TestSandbox, noise_png, spawn_sandbox};

use crate::upload::{Committed, apply_and_upload, decrypt, upload_config, upload_private_image};
use crate::websocket::{next_binary, open};
use crate::{alice, alter, assert_refused, http, new_id, post_route};

/// A 1802 send of `image` from `account` into the seed's conversation 0.
fn image_request(sandbox: &TestSandbox, account: &Account, image: &Committed, n: u8) -> Request {
    let c = &sandbox.handle.seed().conversations[0];
    let id = new_id(n);
    let params = SendParams {
        conversation_id: &c.conversation_id,
        conversation_short_id: c.conversation_short_id,
        inbox_type: 0,
        content: "",
        message_type: 0,
        client_message_id: &id,
        sequence_id: 10009,
        context_headers: Vec::new(),
        device_id: &account.wid,
    };
    let image = PrivateImage {
        path: image.path.clone(),
        decrypt_key: image.key.clone(),
        width: image.width,
        height: image.height,
        size: image.size,
        file_name: "image.png".into(),
    };
    private_image_request(params, &image)
}

async fn send(sandbox: &TestSandbox, account: &Account, request: &Request) -> Response {
    post_route(
        sandbox,
        &account.session,
        "v1/message/send",
        WEB_API_QUERY,
        request,
    )
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_private_image_of_the_senders_own_upload_is_accepted_and_listed_with_its_image() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let png = noise_png(64, 48, 3);
    let committed = upload_private_image(&sandbox, &a, &png).await;
    let response = send(&sandbox, &a, &image_request(&sandbox, &a, &committed, 1)).await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
    assert_eq!(
        response.body.unwrap().send_message_body.unwrap().status,
        Some(0)
    );

    let expected = ReceivedImage {
        path: committed.path.clone(),
        width: 64,
        height: 48,
        size: png.len() as u64,
        sha256: sha256_hex(&png),
    };
    let messages = sandbox.handle.messages();
    assert_eq!(messages[0].message_type, 1802);
    assert_eq!(messages[0].image.as_ref(), Some(&expected));
    let listed: serde_json::Value = http()
        .get(format!("{}/_sandbox/messages", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(listed[0]["content"], serde_json::Value::Null);
    assert_eq!(
        listed[0]["image"],
        serde_json::json!({
            "path": committed.path, "width": 64, "height": 48,
            "size": png.len(), "sha256": sha256_hex(&png),
        })
    );
}

#[tokio::test]
async fn a_private_image_is_refused_with_a_wrong_key_an_uncommitted_path_or_another_accounts_upload()
 {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let bob = sandbox.handle.account("bob").unwrap().clone();
    let png = noise_png(32, 32, 4);
    let own = upload_private_image(&sandbox, &a, &png).await;
    let bobs = upload_private_image(&sandbox, &bob, &png).await;
    let config = upload_config(&sandbox, &a).await;
    let (_, uncommitted_path) = apply_and_upload(&config, &png).await;

    let wrong_key = Committed {
        key: "ab".repeat(32),
        ..own.clone()
    };
    let uncommitted = Committed {
        path: uncommitted_path,
        ..own.clone()
    };
    let mut cases = vec![
        (
            image_request(&sandbox, &a, &wrong_key, 1),
            "decrypt_key does not open",
        ),
        (
            image_request(&sandbox, &a, &uncommitted, 2),
            "is not a committed upload",
        ),
        (image_request(&sandbox, &a, &bobs, 3), "another account"),
    ];
    cases.push((
        alter(image_request(&sandbox, &a, &own, 4), |b| {
            b.content = Some(r#"{"aweType":0,"text":"x"}"#.into());
        }),
        "content must be empty",
    ));
    cases.push((
        alter(image_request(&sandbox, &a, &own, 5), |b| b.scene = None),
        "scene",
    ));
    cases.push((
        alter(image_request(&sandbox, &a, &own, 6), |b| {
            b.send_media_list[0].decrypt_key = Some(bobs.key.as_str().into());
        }),
        "send_media_list[0]",
    ));

    for (request, reason) in cases {
        assert_refused(&send(&sandbox, &a, &request).await, 4, reason);
    }
    assert!(sandbox.handle.messages().is_empty());
}

#[tokio::test]
async fn the_echo_of_a_private_image_carries_its_content_pb_and_a_url_serving_the_encrypted_blob() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let bob = sandbox.handle.account("bob").unwrap().clone();
    let mut bob_ws = open(&sandbox, &bob).await;
    let png = noise_png(40, 30, 5);
    let committed = upload_private_image(&sandbox, &a, &png).await;
    let request = image_request(&sandbox, &a, &committed, 1);
    let response = send(&sandbox, &a, &request).await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);

    let push = frame_response(&next_binary(&mut bob_ws).await).unwrap();
    let message = push
        .body
        .unwrap()
        .has_new_message_notify
        .remove(0)
        .message
        .unwrap();
    assert_eq!(message.message_type, Some(1802));
    assert_eq!(message.content.as_deref(), Some(""));
    assert_eq!(message.scene.as_deref(), Some("private_image"));
    let sent = request
        .body
        .unwrap()
        .send_message_body
        .unwrap()
        .content_pb
        .unwrap();
    let echoed = MessageContent::decode(message.content_pb.as_deref().unwrap()).unwrap();
    assert_eq!(echoed, sent);
    let [media] = &message.media_info_list[..] else {
        panic!("one media info expected: {:?}", message.media_info_list);
    };
    assert_eq!(media.path.as_deref(), Some(committed.path.as_str()));
    assert_eq!(media.decrypt_key.as_deref(), Some(committed.key.as_str()));
    let variant = &media.variants[0];
    assert_eq!(variant.label.as_deref(), Some(&b"full"[..]));
    assert_eq!((variant.width, variant.height), (Some(40), Some(30)));
    let url = variant.urls[0].to_string();
    assert_eq!(
        url,
        format!("{}/im/media/{}", sandbox.base_url(), committed.path)
    );
    // The receiver fetches it with its session, as from TikTok.
    let blob = http()
        .get(&url)
        .header("cookie", format!("sessionid={}", bob.session))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(decrypt(&committed.key, &blob).unwrap(), png);
    assert_eq!(http().get(&url).send().await.unwrap().status(), 401);
}
