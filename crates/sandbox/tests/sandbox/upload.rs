//! The ImageX upload backend as a server, driven the way the working client
//! drives it (PROTOCOL.md 10.3): credentials from cmd 2059, a SigV4-signed
//! Apply, the storage node, a Commit asking for `cipher_v2`, and the blob that
//! the returned key opens. The signer here is the test's own.

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use tiktok_dm_proto::codec::media_upload_config_request;
use tiktok_dm_proto::schema::MediaUploadConfig;
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::{TestSandbox, noise_png, spawn_sandbox};

use crate::{alice, http, post_route};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// cmd 2059 over HTTP as the working client sends it: no query string and no
/// `device_id`.
pub async fn upload_config(sandbox: &TestSandbox, account: &Account) -> MediaUploadConfig {
    let mut request = media_upload_config_request(10007, &account.wid);
    request.device_id = None;
    let response = post_route(
        sandbox,
        &account.session,
        "v1/media/upload_config",
        "",
        &request,
    )
    .await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
    let mut configs = response
        .body
        .unwrap()
        .media_upload_config_body
        .unwrap()
        .configs;
    assert_eq!(configs.len(), 1);
    configs.remove(0)
}

/// A signed ImageX API call: `query` must already be sorted and encoded.
pub async fn imagex(
    config: &MediaUploadConfig,
    method: &str,
    query: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let compact = tiktok_dm_proto::time::Utc::from_unix(secs).compact();
    let (date, amz_date) = (
        &compact[..8],
        format!("{}T{}Z", &compact[..8], &compact[8..]),
    );
    let token = config.security_token.as_deref().unwrap();
    let payload_hash = hex(&Sha256::digest(&body));
    let mut headers = vec![
        ("x-amz-date", amz_date.clone()),
        ("x-amz-security-token", token.to_owned()),
    ];
    if method == "POST" {
        headers.insert(0, ("x-amz-content-sha256", payload_hash.clone()));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{method}\n/\n{query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed.join(";")
    );
    let scope = format!("{date}/cn-north-1/imagex/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let secret = config.secret_access_key.as_deref().unwrap();
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in ["cn-north-1", "imagex", "aws4_request"] {
        key = hmac(&key, part);
    }
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={}",
        config.access_key_id.as_deref().unwrap(),
        signed.join(";"),
        hex(&hmac(&key, &to_sign))
    );
    let url = format!("http://{}/?{query}", config.host.as_deref().unwrap());
    let mut request = if method == "POST" {
        http()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
    } else {
        http().get(url)
    };
    request = request.header("authorization", authorization);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap().parse().unwrap())
}

/// What Apply gives: where and with which token to upload, and the session.
pub struct Applied {
    pub session_key: String,
    pub store_uri: String,
    auth: String,
    host: String,
}

impl Applied {
    /// POSTs `body` to the storage node for this store URI.
    async fn store(&self, query: &str, body: Vec<u8>) -> serde_json::Value {
        let response = http()
            .post(format!(
                "http://{}/upload/v1/{}{query}",
                self.host, self.store_uri
            ))
            .header("authorization", &self.auth)
            .header("content-crc32", format!("{:08x}", crc32fast::hash(&body)))
            .header("content-type", "application/octet-stream")
            .header("content-disposition", "attachment; filename=\"undefined\"")
            .body(body)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap().parse().unwrap()
    }
}

pub async fn apply(config: &MediaUploadConfig, size: usize) -> Applied {
    let query = format!(
        "Action=ApplyImageUpload&FileExtension=.png&FileSize={size}&ServiceId={}&Version=2018-08-01&s=k3v9x0q2w7a",
        config.service_id.as_deref().unwrap()
    );
    let (status, applied) = imagex(config, "GET", &query, Vec::new()).await;
    assert_eq!(status, 200, "{applied}");
    let address = &applied["Result"]["UploadAddress"];
    let store = &address["StoreInfos"][0];
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
    Applied {
        session_key: text(&address["SessionKey"]),
        store_uri: text(&store["StoreUri"]),
        auth: text(&store["Auth"]),
        host: text(&address["UploadHosts"][0]),
    }
}

/// Apply, then upload `bytes` to the storage node in one request; returns the
/// session key and the store URI.
pub async fn apply_and_upload(config: &MediaUploadConfig, bytes: &[u8]) -> (String, String) {
    let applied = apply(config, bytes.len()).await;
    let stored = applied.store("", bytes.to_vec()).await;
    assert_eq!(stored["code"], 2000, "{stored}");
    (applied.session_key, applied.store_uri)
}

/// Commit with the working client's body (or without functions).
pub async fn commit(
    config: &MediaUploadConfig,
    session_key: &str,
    encrypt: bool,
) -> (u16, serde_json::Value) {
    let mut body = serde_json::json!({"SessionKey": session_key});
    if encrypt {
        body["Functions"] = serde_json::json!([{"name": "Encryption", "input": {"Config": {"copies": "cipher_v2"}}}]);
    }
    let query = format!(
        "Action=CommitImageUpload&ServiceId={}&Version=2018-08-01",
        config.service_id.as_deref().unwrap()
    );
    imagex(config, "POST", &query, body.to_string().into_bytes()).await
}

/// A committed private image: what a 1802 send names.
#[derive(Clone)]
pub struct Committed {
    pub path: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

/// Uploads and commits `png` with `cipher_v2` using `account`'s credentials.
pub async fn upload_private_image(
    sandbox: &TestSandbox,
    account: &Account,
    png: &[u8],
) -> Committed {
    let config = upload_config(sandbox, account).await;
    let (session_key, _) = apply_and_upload(&config, png).await;
    let (status, committed) = commit(&config, &session_key, true).await;
    assert_eq!(status, 200, "{committed}");
    let encryption = &committed["Result"]["Results"][0]["Encryption"];
    let number = |k: &str| {
        encryption["Extra"][k]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    Committed {
        path: encryption["Uri"].as_str().unwrap().to_owned(),
        key: encryption["SecretKey"].as_str().unwrap().to_owned(),
        width: number("img_width") as u32,
        height: number("img_height") as u32,
        size: number("img_size"),
    }
}

pub fn decrypt(key_hex: &str, blob: &[u8]) -> Option<Vec<u8>> {
    let key: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&key_hex[i..i + 2], 16).unwrap())
        .collect();
    let (nonce, sealed) = blob.split_at(12);
    Aes256Gcm::new_from_slice(&key)
        .unwrap()
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()
}

async fn get_object(sandbox: &TestSandbox, path: &str, query: &str) -> (u16, Vec<u8>) {
    let response = http()
        .get(format!(
            "{}/_sandbox/objects/{path}{query}",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn cmd_2059_returns_imagex_credentials_naming_the_sandbox_as_host() {
    let sandbox = spawn_sandbox().await;
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    assert_eq!(config.upload_kind, Some(1));
    assert_eq!(config.service_id.as_deref(), Some("sandbox-im-imagex"));
    assert_eq!(
        config.host.as_deref(),
        Some(sandbox.addr.to_string().as_str())
    );
    let (issued, expires) = (config.issued_at_ms.unwrap(), config.expires_at_ms.unwrap());
    assert!(
        expires > issued && issued > 1_700_000_000_000,
        "{issued} {expires}"
    );
    for field in [
        &config.access_key_id,
        &config.security_token,
        &config.secret_access_key,
    ] {
        assert!(field.as_deref().is_some_and(|v| !v.is_empty()));
    }
}

#[tokio::test]
async fn a_cipher_v2_commit_stores_a_blob_that_its_secret_key_opens() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let png = noise_png(64, 48, 1);
    let config = upload_config(&sandbox, &a).await;
    let (session_key, store_uri) = apply_and_upload(&config, &png).await;
    let (status, committed) = commit(&config, &session_key, true).await;
    assert_eq!(status, 200, "{committed}");
    let result = &committed["Result"];
    let encryption = &result["Results"][0]["Encryption"];
    let path = encryption["Uri"].as_str().unwrap();
    assert_eq!(path, store_uri);
    assert_eq!(result["Results"][0]["Uri"], path);
    assert_eq!(result["Results"][0]["UriStatus"], 2000);
    assert_eq!(encryption["Algorithm"], "AES-GCM");
    assert_eq!(encryption["Version"], "v2");
    let key = encryption["SecretKey"].as_str().unwrap();
    assert!(
        key.len() == 64 && key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{key}"
    );
    let md5 = hex(&md5::Md5::digest(&png));
    assert_eq!(encryption["SourceMd5"], md5.as_str());
    let size = png.len().to_string();
    assert_eq!(
        encryption["Extra"],
        serde_json::json!({"img_width": "64", "img_height": "48", "img_size": size, "img_format": "png"})
    );
    let plugin = &result["PluginResult"][0];
    assert_eq!(
        (
            &plugin["ImageUri"],
            &plugin["ImageWidth"],
            &plugin["ImageHeight"],
            &plugin["ImageMd5"]
        ),
        (
            &serde_json::json!(path),
            &serde_json::json!(64),
            &serde_json::json!(48),
            &serde_json::json!(md5)
        )
    );

    let (status, blob) = get_object(&sandbox, path, "?encrypted=1").await;
    assert_eq!(status, 200);
    assert_eq!(blob.len(), 12 + png.len() + 16);
    assert_eq!(decrypt(key, &blob).unwrap(), png);
    assert_eq!(sandbox.handle.encrypted_object(path).unwrap(), blob);
    assert_eq!(get_object(&sandbox, path, "").await, (200, png.clone()));
    assert_eq!(sandbox.handle.object(path).unwrap(), png);
}

#[tokio::test]
async fn a_commit_without_the_encryption_function_stores_the_image_plain_and_gives_no_key() {
    let sandbox = spawn_sandbox().await;
    let png = noise_png(10, 20, 2);
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    let (session_key, path) = apply_and_upload(&config, &png).await;
    let (status, committed) = commit(&config, &session_key, false).await;
    assert_eq!(status, 200, "{committed}");
    assert!(
        committed["Result"]["Results"][0]
            .get("Encryption")
            .is_none(),
        "{committed}"
    );
    assert_eq!(
        committed["Result"]["PluginResult"][0]["ImageUri"],
        path.as_str()
    );
    assert_eq!(sandbox.handle.encrypted_object(&path).unwrap(), png);
    assert_eq!(
        get_object(&sandbox, &path, "?encrypted=1").await,
        (200, png)
    );
}

#[tokio::test]
async fn apply_accepts_a_query_without_file_size_or_extension() {
    let sandbox = spawn_sandbox().await;
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    let query = "Action=ApplyImageUpload&ServiceId=sandbox-im-imagex&Version=2018-08-01&s=abc";
    let (status, applied) = imagex(&config, "GET", query, Vec::new()).await;
    assert_eq!(status, 200, "{applied}");
    assert!(applied["Result"]["UploadAddress"]["SessionKey"].is_string());
    let no_dot =
        "Action=ApplyImageUpload&FileExtension=png&ServiceId=sandbox-im-imagex&Version=2018-08-01";
    let (status, refused) = imagex(&config, "GET", no_dot, Vec::new()).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["ResponseMetadata"]["Error"]["Code"],
        "InvalidParameter"
    );
}

#[tokio::test]
async fn a_part_upload_is_assembled_from_its_parts_in_order_and_commits() {
    let sandbox = spawn_sandbox().await;
    let png = noise_png(30, 30, 6);
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    let applied = apply(&config, png.len()).await;
    let init = applied.store("?phase=init", Vec::new()).await;
    let id = init["data"]["uploadid"].as_str().unwrap().to_owned();
    let (head, tail) = png.split_at(1000);
    let mut listed = Vec::new();
    // The second part arrives first: the finish list gives the order.
    for (number, offset, part) in [(2, 1000, tail), (1, 0, head)] {
        let query =
            format!("?phase=transfer&uploadid={id}&part_number={number}&part_offset={offset}");
        let sent = applied.store(&query, part.to_vec()).await;
        assert_eq!(sent["code"], 2000, "{sent}");
        listed.push(format!("{number}:{:08x}", crc32fast::hash(part)));
    }
    listed.reverse();
    let finished = applied
        .store(
            &format!("?phase=finish&uploadid={id}"),
            listed.join(",").into_bytes(),
        )
        .await;
    assert_eq!(
        finished["data"]["crc32"],
        format!("{:08x}", crc32fast::hash(&png))
    );
    let (status, committed) = commit(&config, &applied.session_key, true).await;
    assert_eq!(status, 200, "{committed}");
    assert_eq!(sandbox.handle.object(&applied.store_uri).unwrap(), png);
}

#[tokio::test]
async fn a_commit_of_bytes_that_are_not_an_image_gets_a_bytedance_style_error() {
    let sandbox = spawn_sandbox().await;
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    let (session_key, _) = apply_and_upload(&config, b"plain text, not an image").await;
    let (status, refused) = commit(&config, &session_key, true).await;
    assert_eq!(status, 400);
    let error = &refused["ResponseMetadata"]["Error"];
    assert_eq!(error["Code"], "InvalidImage", "{refused}");
    assert!(
        error["Message"].as_str().unwrap().contains("not an image"),
        "{refused}"
    );
}

#[tokio::test]
async fn expired_credentials_are_answered_expired_token() {
    let sandbox = spawn_sandbox().await;
    let config = upload_config(&sandbox, &alice(&sandbox)).await;
    sandbox.handle.expire_upload_credentials();
    let query = "Action=ApplyImageUpload&ServiceId=sandbox-im-imagex&Version=2018-08-01";
    let (status, refused) = imagex(&config, "GET", query, Vec::new()).await;
    assert_eq!(status, 401);
    assert_eq!(refused["ResponseMetadata"]["Error"]["Code"], "ExpiredToken");
}

#[tokio::test]
async fn unsigned_unknown_and_douyin_upload_api_calls_are_refused() {
    let sandbox = spawn_sandbox().await;
    let base = sandbox.base_url();
    let get = |query: &str| http().get(format!("{base}/?{query}")).send();
    let unsigned = get("Action=ApplyImageUpload&ServiceId=sandbox-im-imagex&Version=2018-08-01")
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let body: serde_json::Value = unsigned.text().await.unwrap().parse().unwrap();
    assert_eq!(
        body["ResponseMetadata"]["Error"]["Code"],
        "MissingAuthenticationToken"
    );

    let forged = http()
        .get(format!("{base}/?Action=ApplyImageUpload&ServiceId=sandbox-im-imagex&Version=2018-08-01"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKNOBODY/20260101/cn-north-1/imagex/aws4_request, SignedHeaders=x-amz-date;x-amz-security-token, Signature=00")
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

    // The Douyin VOD actions are gone with the cmd 2003 path.
    for action in ["DeleteEverything", "ApplyUploadInner", "CommitUploadInner"] {
        let refused = get(&format!("Action={action}&Version=2020-11-19"))
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{action}");
    }
    let wrong_method = get("Action=CommitImageUpload&Version=2018-08-01")
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
    let (status, _) = get_object(&sandbox, "tos-sandbox-i-0001/nothing", "?encrypted=1").await;
    assert_eq!(status, 404);
    assert_eq!(
        get_object(&sandbox, "tos-sandbox-i-0001/nothing", "")
            .await
            .0,
        404
    );
}
