//! The upload backend as a server: requests it must refuse, made without any
//! client code (the positive path is covered end to end by the client's tests).

use tiktok_dm_test_support::spawn_sandbox;

use crate::http;

#[tokio::test]
async fn unsigned_or_unknown_upload_api_calls_are_refused() {
    let sandbox = spawn_sandbox().await;
    let base = sandbox.base_url();
    let unsigned = http()
        .get(format!("{base}/?Action=ApplyUploadInner&Version=2020-11-19&SpaceName=sandbox-im-space&FileSize=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let body: serde_json::Value = unsigned.text().await.unwrap().parse().unwrap();
    assert_eq!(
        body["ResponseMetadata"]["Error"]["Code"],
        "MissingAuthenticationToken"
    );

    let forged = http()
        .get(format!("{base}/?Action=ApplyUploadInner&Version=2020-11-19&SpaceName=sandbox-im-space"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKNOBODY/20260101/cn-north-1/vod/aws4_request, SignedHeaders=x-amz-date;x-amz-security-token, Signature=00")
        .header("x-amz-date", "20260101T000000Z")
        .header("x-amz-security-token", "t")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = forged.text().await.unwrap().parse().unwrap();
    assert_eq!(
        body["ResponseMetadata"]["Error"]["Code"],
        "InvalidAccessKey"
    );

    let unknown = http()
        .get(format!("{base}/?Action=DeleteEverything"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let wrong_method = http()
        .get(format!(
            "{base}/?Action=CommitUploadInner&Version=2020-11-19"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
}

#[tokio::test]
async fn the_storage_node_refuses_uploads_without_a_valid_token() {
    let sandbox = spawn_sandbox().await;
    let response = http()
        .post(format!(
            "{}/upload/v1/tos-sandbox-i-0001/abc",
            sandbox.base_url()
        ))
        .header("authorization", "SpaceKey/forged")
        .header("content-crc32", format!("{:08x}", crc32fast::hash(b"data")))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.text().await.unwrap().parse().unwrap();
    assert_eq!(body["code"], 4010);
}

#[tokio::test]
async fn objects_that_were_never_committed_are_not_found() {
    let sandbox = spawn_sandbox().await;
    let response = http()
        .get(format!(
            "{}/_sandbox/objects/tos-sandbox-o-0001/nothing",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
