//! The ImageX upload API: `GET /?Action=ApplyImageUpload` and
//! `POST /?Action=CommitImageUpload` (Version 2018-08-01), both SigV4-signed
//! with the cmd 2059 credentials. Errors are ByteDance-style JSON
//! (`ResponseMetadata.Error`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest as _, Md5};
use serde_json::json;
use tiktok_dm_proto::ids::Uid;

use super::{
    ApplySession, REGION, SERVICE, SERVICE_ID, StoredObject, VERSION, cipher, random_hex, verify,
};
use crate::faults::Fault;
use crate::state::{Shared, now_ms};

/// The query as percent-decoded pairs (the last of a repeated key wins).
pub(super) fn query_map(raw: &str) -> HashMap<String, String> {
    let text = |s: &str| String::from_utf8_lossy(&verify::decode(s)).into_owned();
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (text(k), text(v)))
        .collect()
}

fn api_error(status: StatusCode, action: &str, code: &str, message: &str) -> Response {
    let body = json!({
        "ResponseMetadata": {
            "RequestId": random_hex(32),
            "Action": action,
            "Version": VERSION,
            "Service": SERVICE,
            "Region": REGION,
            "Error": {"Code": code, "Message": message},
        }
    });
    (status, Json(body)).into_response()
}

fn invalid(action: &str, message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, action, "InvalidParameter", message)
}

fn api_ok(action: &str, result: serde_json::Value) -> Response {
    Json(json!({
        "ResponseMetadata": {"RequestId": random_hex(32), "Action": action, "Version": VERSION, "Service": SERVICE, "Region": REGION},
        "Result": result,
    }))
    .into_response()
}

/// `GET /?Action=ApplyImageUpload` and `POST /?Action=CommitImageUpload`.
pub(crate) async fn action(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = raw.unwrap_or_default();
    let q = query_map(&raw);
    let act = q.get("Action").cloned().unwrap_or_default();
    let apply = match requested_action(&act, &q, &method) {
        Ok(apply) => apply,
        Err((status, code, message)) => return api_error(status, &act, code, &message),
    };
    let fault = shared.lock().faults.take(|f| {
        matches!(f, Fault::SignatureMismatch | Fault::CommitFailure)
            && (!apply || *f == Fault::SignatureMismatch)
    });
    let arrived = verify::Arrived {
        method: method.as_str(),
        raw_query: &raw,
        headers: &headers,
        body: &body,
    };
    let creds = match authenticate(&shared, fault.as_ref(), &arrived, &q) {
        Ok(creds) => creds,
        Err((status, code, message)) => return api_error(status, &act, code, &message),
    };
    if apply {
        return apply_upload(&shared, &q, &headers, creds.uid);
    }
    if fault == Some(Fault::CommitFailure) {
        let message = "commit failed (sandbox fault)";
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &act,
            "InternalError",
            message,
        );
    }
    commit_off_runtime(shared, body, creds.uid).await
}

/// An error answer before it names its action: status, code and message.
type Refused = (StatusCode, &'static str, String);

/// Whether the query's `Action` is Apply (else Commit), once the action, the
/// method and the `Version` are ones the API knows.
fn requested_action(
    act: &str,
    q: &HashMap<String, String>,
    method: &Method,
) -> Result<bool, Refused> {
    let apply = match act {
        "ApplyImageUpload" => true,
        "CommitImageUpload" => false,
        _ => {
            let message = "unknown or missing Action (ApplyImageUpload, CommitImageUpload)";
            return Err((StatusCode::BAD_REQUEST, "InvalidAction", message.into()));
        }
    };
    if (apply && method != Method::GET) || (!apply && method != Method::POST) {
        let message = "ApplyImageUpload is GET, CommitImageUpload is POST";
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidMethod",
            message.into(),
        ));
    }
    if q.get("Version").map(String::as_str) != Some(VERSION) {
        let message = format!("Version must be {VERSION}");
        return Err((StatusCode::BAD_REQUEST, "InvalidVersion", message));
    }
    Ok(apply)
}

/// The credentials that signed the request, unless a scripted
/// `SignatureMismatch` fault refuses it first; then the `ServiceId` must be
/// the sandbox's.
fn authenticate(
    shared: &Shared,
    fault: Option<&Fault>,
    arrived: &verify::Arrived<'_>,
    q: &HashMap<String, String>,
) -> Result<super::Credentials, Refused> {
    if fault == Some(&Fault::SignatureMismatch) {
        let message = "the request signature does not match (sandbox fault)";
        return Err((
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            message.into(),
        ));
    }
    let creds = check_signature(shared, arrived)?;
    if q.get("ServiceId").map(String::as_str) != Some(SERVICE_ID) {
        let message = format!("ServiceId must be {SERVICE_ID}");
        return Err((StatusCode::BAD_REQUEST, "InvalidParameter", message));
    }
    Ok(creds)
}

/// Runs the commit on a blocking thread: hashing, probing and encrypting up to
/// 20 MB is CPU work, and off the runtime's threads other requests (and the
/// client's socket) go on.
async fn commit_off_runtime(shared: Arc<Shared>, body: Bytes, uid: Uid) -> Response {
    tokio::task::spawn_blocking(move || commit(&shared, &body, uid))
        .await
        .unwrap_or_else(|_| {
            let message = "the commit did not finish";
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ACT_COMMIT,
                "InternalError",
                message,
            )
        })
}

const ACT_COMMIT: &str = "CommitImageUpload";

/// Verifies the SigV4 signature against the issued credentials: 401 for
/// expired ones, 403 for anything else.
fn check_signature(
    shared: &Shared,
    arrived: &verify::Arrived<'_>,
) -> Result<super::Credentials, Refused> {
    let state = shared.lock();
    let lookup = |ak: &str| state.upload.credentials(ak);
    verify::verify(arrived, lookup, SERVICE, REGION, now_ms()).map_err(|(code, message)| {
        let status = if code == "ExpiredToken" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        (status, code, message)
    })
}

/// Apply: a store URI with its upload token, on this sandbox's storage node.
/// `FileExtension` (with its dot) and `FileSize` may be left out.
fn apply_upload(
    shared: &Shared,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    uid: Uid,
) -> Response {
    const ACT: &str = "ApplyImageUpload";
    if let Some(ext) = q.get("FileExtension") {
        if ext.len() < 2 || !ext.starts_with('.') {
            return invalid(ACT, "FileExtension must start with a dot, e.g. .png");
        }
    }
    if q.get("FileSize").is_some_and(|s| s.parse::<u64>().is_err()) {
        return invalid(ACT, "FileSize must be a whole number of bytes");
    }
    let fault = shared.lock().faults.take(|f| {
        matches!(
            f,
            Fault::UploadHost { .. } | Fault::OddUploadNames | Fault::LargeUploadAnswer { .. }
        )
    });
    let host = match &fault {
        Some(Fault::UploadHost { host }) => host.clone(),
        _ => headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_owned(),
    };
    let odd_names = fault == Some(Fault::OddUploadNames);
    let store_uri = if odd_names {
        format!("tos-sandbox-i-0001/odd name?x=1#y&z%{}", random_hex(8))
    } else {
        format!("tos-sandbox-i-0001/{}", random_hex(32))
    };
    let session_key = random_hex(40);
    let auth = format!("SpaceKey/sandbox/1/:version:v2:{}", random_hex(48));
    shared.lock().upload.sessions.insert(
        session_key.clone(),
        ApplySession {
            store_uri: store_uri.clone(),
            auth: auth.clone(),
            uid,
            odd_names,
        },
    );
    let store = json!({"StoreUri": store_uri, "Auth": auth, "UploadID": random_hex(32), "StorageHeader": {"USER_ID": uid.to_string()}});
    let result = json!({"UploadAddress": {"StoreInfos": [store], "UploadHosts": [host], "SessionKey": session_key}});
    match fault {
        Some(Fault::LargeUploadAnswer { bytes }) => api_ok_padded(ACT, result, bytes),
        _ => api_ok(ACT, result),
    }
}

/// [`api_ok`]'s answer followed by spaces up to `bytes` bytes in all.
fn api_ok_padded(action: &str, result: serde_json::Value, bytes: u64) -> Response {
    let mut body = json!({
        "ResponseMetadata": {"RequestId": random_hex(32), "Action": action, "Version": VERSION, "Service": SERVICE, "Region": REGION},
        "Result": result,
    })
    .to_string()
    .into_bytes();
    // At most 64 MiB: a fault posted by a user must not exhaust the sandbox.
    let size = usize::try_from(bytes.min(64 << 20))
        .unwrap_or(0)
        .max(body.len());
    body.resize(size, b' ');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether a commit's `Functions` ask for `cipher_v2` encryption. The sandbox
/// knows only the `Encryption` function.
fn wants_encryption(functions: &serde_json::Value) -> Result<bool, String> {
    let list = match functions {
        serde_json::Value::Null => return Ok(false),
        serde_json::Value::Array(list) => list,
        _ => return Err("Functions must be an array".into()),
    };
    let mut encrypt = false;
    for function in list {
        match function["name"].as_str() {
            Some("Encryption") => {
                let copies = function["input"]["Config"]["copies"].as_str();
                if copies != Some("cipher_v2") {
                    return Err(format!(
                        "Encryption copies {copies:?} is not supported; the sandbox knows cipher_v2"
                    ));
                }
                encrypt = true;
            }
            other => {
                return Err(format!(
                    "function {other:?} is not supported; the sandbox knows Encryption"
                ));
            }
        }
    }
    Ok(encrypt)
}

/// Takes the bytes uploaded under `session_key` out of the state, so hashing
/// and encrypting run outside the lock; the session itself stays until the
/// commit succeeds.
fn take_upload(
    shared: &Shared,
    session_key: &str,
    uid: Uid,
) -> Result<(String, Vec<u8>), (&'static str, &'static str)> {
    let mut state = shared.lock();
    let session = state
        .upload
        .sessions
        .get(session_key)
        .cloned()
        .ok_or(("InvalidSessionKey", "unknown SessionKey"))?;
    if session.uid != uid {
        return Err((
            "InvalidSessionKey",
            "the SessionKey belongs to other credentials",
        ));
    }
    match state.upload.stored.remove(&session.store_uri) {
        Some(bytes) => Ok((session.store_uri, bytes)),
        None => Err(("FileNotUploaded", "nothing was uploaded to the store URI")),
    }
}

/// Commit: the uploaded bytes become an object owned by `uid`, encrypted when
/// the body asks for `cipher_v2`.
fn commit(shared: &Shared, body: &[u8], uid: Uid) -> Response {
    const ACT: &str = ACT_COMMIT;
    let request: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid(ACT, &format!("the body is not JSON: {e}")),
    };
    let Some(session_key) = request["SessionKey"].as_str() else {
        return invalid(ACT, "SessionKey is missing from the body");
    };
    let encrypt = match wants_encryption(&request["Functions"]) {
        Ok(encrypt) => encrypt,
        Err(message) => return invalid(ACT, &message),
    };
    let (path, plain) = match take_upload(shared, session_key, uid) {
        Ok(taken) => taken,
        Err((code, message)) => return api_error(StatusCode::BAD_REQUEST, ACT, code, message),
    };
    let probe = match tiktok_dm_proto::image::probe(&plain) {
        Ok(p) => p,
        Err(e) => {
            // The upload stays, as it was, for a corrected commit.
            shared.lock().upload.stored.insert(path, plain);
            return api_error(StatusCode::BAD_REQUEST, ACT, "InvalidImage", &e.to_string());
        }
    };
    let md5 = tiktok_dm_proto::access_key::hex(&Md5::digest(&plain));
    let sha256 = tiktok_dm_proto::access_key::hex(&sha2::Sha256::digest(&plain));
    let size = plain.len();
    let (blob, key_hex) = if encrypt {
        match cipher::seal(&plain) {
            Some(sealed) => (sealed.blob, Some(sealed.key_hex)),
            None => {
                let message = "the image could not be encrypted";
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ACT,
                    "InternalError",
                    message,
                );
            }
        }
    } else {
        (plain, None)
    };
    let object = StoredObject {
        owner: uid,
        blob: Arc::new(blob),
        key_hex: key_hex.clone(),
        width: probe.width,
        height: probe.height,
        size: size as u64,
        sha256,
    };
    {
        let mut state = shared.lock();
        state.upload.sessions.remove(session_key);
        state.upload.objects.insert(path.clone(), object);
    }
    api_ok(ACT, commit_result(&path, key_hex, &md5, size, probe))
}

/// The commit's `Result`: `Results[0].Encryption` (for an encrypted commit)
/// and `PluginResult[0]` describe the image, both under its path.
fn commit_result(
    path: &str,
    key_hex: Option<String>,
    md5: &str,
    size: usize,
    probe: tiktok_dm_proto::image::Probe,
) -> serde_json::Value {
    let mut first = json!({"Uri": path, "UriStatus": 2000});
    if let Some(key) = key_hex {
        first["Encryption"] = json!({
            "Uri": path, "SecretKey": key, "Algorithm": "AES-GCM", "Version": "v2", "SourceMd5": md5,
            "Extra": {"img_width": probe.width.to_string(), "img_height": probe.height.to_string(),
                "img_size": size.to_string(), "img_format": probe.format},
        });
    }
    let file_name = path.rsplit('/').next().unwrap_or_default();
    json!({
        "Results": [first],
        "PluginResult": [{"FileName": file_name, "SourceUri": path, "ImageUri": path,
            "ImageWidth": probe.width, "ImageHeight": probe.height, "ImageMd5": md5,
            "ImageFormat": probe.format, "ImageSize": size, "FrameCnt": 1}],
    })
}
