//! HTTP routes of the upload backend: `GET|POST /?Action=...` (the upload API),
//! `POST /upload/v1/{StoreUri}` (the storage node), `GET /_sandbox/objects/{oid}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest as _, Md5};
use serde_json::json;

use super::{ApplySession, PartUpload, REGION, StoredObject, UploadBackend, random_hex, verify};
use crate::faults::Fault;
use crate::state::{Shared, now_ms};

fn query_map(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn api_error(status: StatusCode, action: &str, code: &str, message: &str) -> Response {
    let body = json!({
        "ResponseMetadata": {
            "RequestId": random_hex(32),
            "Action": action,
            "Region": REGION,
            "Error": {"Code": code, "Message": message},
        }
    });
    (status, Json(body)).into_response()
}

fn api_ok(action: &str, version: &str, service: &str, result: serde_json::Value) -> Response {
    Json(json!({
        "ResponseMetadata": {"RequestId": random_hex(32), "Action": action, "Version": version, "Service": service, "Region": REGION},
        "Result": result,
    }))
    .into_response()
}

/// `GET /?Action=ApplyUploadInner|ApplyImageUpload` and
/// `POST /?Action=CommitUploadInner|CommitImageUpload`.
pub(crate) async fn action(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = raw.unwrap_or_default();
    let q = query_map(&raw);
    let act = q
        .get("Action")
        .map(String::as_str)
        .unwrap_or_default()
        .to_owned();
    let (backend, apply, version, service) = match act.as_str() {
        "ApplyUploadInner" => (UploadBackend::Vod, true, "2020-11-19", "vod"),
        "CommitUploadInner" => (UploadBackend::Vod, false, "2020-11-19", "vod"),
        "ApplyImageUpload" => (UploadBackend::Imagex, true, "2018-08-01", "imagex"),
        "CommitImageUpload" => (UploadBackend::Imagex, false, "2018-08-01", "imagex"),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                &act,
                "InvalidAction",
                "unknown or missing Action",
            );
        }
    };
    if backend != shared.upload_backend {
        return api_error(
            StatusCode::BAD_REQUEST,
            &act,
            "InvalidAction",
            "these credentials are for the other backend",
        );
    }
    if (apply && method != Method::GET) || (!apply && method != Method::POST) {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &act,
            "InvalidMethod",
            "Apply is GET, Commit is POST",
        );
    }
    if q.get("Version").map(String::as_str) != Some(version) {
        return api_error(
            StatusCode::BAD_REQUEST,
            &act,
            "InvalidVersion",
            &format!("Version must be {version}"),
        );
    }
    let fault = shared.lock().faults.take(|f| {
        matches!(f, Fault::SignatureMismatch | Fault::CommitFailure)
            && (!apply || *f == Fault::SignatureMismatch)
    });
    if fault == Some(Fault::SignatureMismatch) {
        return api_error(
            StatusCode::FORBIDDEN,
            &act,
            "SignatureDoesNotMatch",
            "the request signature does not match (sandbox fault)",
        );
    }
    let creds = {
        let state = shared.lock();
        let lookup = |ak: &str| state.upload.credentials(ak);
        let arrived = verify::Arrived {
            method: method.as_str(),
            raw_query: &raw,
            headers: &headers,
            body: &body,
        };
        match verify::verify(&arrived, lookup, service, REGION, now_ms()) {
            Ok(c) => c,
            Err((code, message)) => {
                let status = if code == "ExpiredToken" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                return api_error(status, &act, code, &message);
            }
        }
    };
    if apply {
        let expected = if backend == UploadBackend::Vod {
            ("SpaceName", "sandbox-im-space")
        } else {
            ("ServiceId", "sandbox-im-imagex")
        };
        if q.get(expected.0).map(String::as_str) != Some(expected.1) {
            return api_error(
                StatusCode::BAD_REQUEST,
                &act,
                "InvalidParameter",
                &format!("{} must be {}", expected.0, expected.1),
            );
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_owned();
        let store_uri = format!("tos-sandbox-i-0001/{}", random_hex(32));
        let session_key = random_hex(40);
        let auth = format!("SpaceKey/sandbox/1/:version:v2:{}", random_hex(48));
        shared.lock().upload.sessions.insert(
            session_key.clone(),
            ApplySession {
                store_uri: store_uri.clone(),
                auth: auth.clone(),
                backend,
                uid: creds.uid,
            },
        );
        let store = json!({"StoreUri": store_uri, "Auth": auth, "UploadID": random_hex(32), "StorageHeader": {"USER_ID": creds.uid.to_string()}});
        let result = match backend {
            UploadBackend::Vod => json!({"InnerUploadAddress": {"UploadNodes": [{
                "StoreInfos": [store], "UploadHost": host, "UploadHosts": [host], "SessionKey": session_key,
            }]}}),
            UploadBackend::Imagex => {
                json!({"UploadAddress": {"StoreInfos": [store], "UploadHosts": [host], "SessionKey": session_key}})
            }
        };
        return api_ok(&act, version, service, result);
    }
    if fault == Some(Fault::CommitFailure) {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &act,
            "InternalError",
            "commit failed (sandbox fault)",
        );
    }
    let session_key = match backend {
        UploadBackend::Vod => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["SessionKey"].as_str().map(str::to_owned)),
        UploadBackend::Imagex => q.get("SessionKey").cloned(),
    };
    let Some(session_key) = session_key else {
        return api_error(
            StatusCode::BAD_REQUEST,
            &act,
            "InvalidParameter",
            "SessionKey is missing",
        );
    };
    commit(&shared, &act, version, service, &session_key, creds.uid)
}

fn commit(
    shared: &Shared,
    act: &str,
    version: &str,
    service: &str,
    session_key: &str,
    uid: tiktok_dm_proto::ids::Uid,
) -> Response {
    let mut state = shared.lock();
    let Some(session) = state.upload.sessions.get(session_key).cloned() else {
        return api_error(
            StatusCode::BAD_REQUEST,
            act,
            "InvalidSessionKey",
            "unknown SessionKey",
        );
    };
    if session.uid != uid {
        return api_error(
            StatusCode::FORBIDDEN,
            act,
            "InvalidSessionKey",
            "the SessionKey belongs to other credentials",
        );
    }
    let Some(bytes) = state.upload.stored.remove(&session.store_uri) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            act,
            "FileNotUploaded",
            "nothing was uploaded to the store URI",
        );
    };
    let probe = match tiktok_dm_proto::image::probe(&bytes) {
        Ok(p) => p,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, act, "InvalidImage", &e.to_string()),
    };
    state.upload.sessions.remove(session_key);
    let md5 = tiktok_dm_proto::access_key::hex(&Md5::digest(&bytes));
    let oid = format!("tos-sandbox-o-0001/{}", random_hex(32));
    let secret_key = random_hex(64);
    let size = bytes.len();
    state.upload.objects.insert(
        oid.clone(),
        StoredObject {
            bytes: Arc::new(bytes),
            md5: md5.clone(),
            secret_key: secret_key.clone(),
            width: probe.width,
            height: probe.height,
        },
    );
    let result = match session.backend {
        UploadBackend::Vod => json!({"Results": [{
            "Uri": session.store_uri, "UriStatus": 2000,
            "Encryption": {"Uri": oid, "SecretKey": secret_key, "Algorithm": "AES-GCM", "Version": "cipher_v2", "SourceMd5": md5,
                "Extra": {"width": probe.width, "height": probe.height, "format": probe.format, "size": size}},
        }]}),
        UploadBackend::Imagex => json!({
            "Results": [{"Uri": session.store_uri, "UriStatus": 2000}],
            "PluginResult": [{"SourceUri": session.store_uri, "ImageUri": oid, "ImageWidth": probe.width, "ImageHeight": probe.height,
                "ImageMd5": md5, "ImageFormat": probe.format, "ImageSize": size, "FrameCnt": 1, "SecretKey": secret_key}],
        }),
    };
    api_ok(act, version, service, result)
}

fn storage_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "apiversion": "v1", "message": message})),
    )
        .into_response()
}

fn storage_ok(data: serde_json::Value) -> Response {
    Json(json!({"code": 2000, "apiversion": "v1", "message": "Success", "data": data}))
        .into_response()
}

/// `POST /upload/v1/{StoreUri}`: single upload, or part upload
/// (`phase=init|transfer|finish`).
pub(crate) async fn storage(
    State(shared): State<Arc<Shared>>,
    Path(store_uri): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(&raw.unwrap_or_default());
    let fault = shared
        .lock()
        .faults
        .take(|f| matches!(f, Fault::StorageDown | Fault::CrcMismatch));
    if fault == Some(Fault::StorageDown) {
        return storage_error(
            StatusCode::SERVICE_UNAVAILABLE,
            5030,
            "storage node unavailable (sandbox fault)",
        );
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut state = shared.lock();
    let authorised = state
        .upload
        .sessions
        .values()
        .any(|s| s.store_uri == store_uri && s.auth == auth);
    if !authorised {
        return storage_error(
            StatusCode::UNAUTHORIZED,
            4010,
            "the upload token does not match the store URI",
        );
    }
    let phase = q.get("phase").map(String::as_str);
    if phase == Some("init") {
        let id = random_hex(32);
        state.upload.parts.insert(
            id.clone(),
            PartUpload {
                store_uri,
                ..PartUpload::default()
            },
        );
        return storage_ok(json!({"uploadid": id}));
    }
    if phase == Some("finish") {
        let id = q.get("uploadid").cloned().unwrap_or_default();
        let Some(upload) = state
            .upload
            .parts
            .remove(&id)
            .filter(|u| u.store_uri == store_uri)
        else {
            return storage_error(StatusCode::BAD_REQUEST, 4004, "unknown uploadid");
        };
        let listed: Vec<String> = String::from_utf8_lossy(&body)
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        let have: Vec<String> = upload
            .parts
            .iter()
            .map(|(n, (_, _, crc))| format!("{n}:{crc:08x}"))
            .collect();
        if listed != have {
            return storage_error(
                StatusCode::BAD_REQUEST,
                4005,
                "the finish list does not match the uploaded parts",
            );
        }
        let mut bytes = Vec::new();
        for (n, (offset, data, _)) in upload.parts {
            if offset != bytes.len() as u64 {
                return storage_error(
                    StatusCode::BAD_REQUEST,
                    4006,
                    &format!("part {n} starts at {offset}, expected {}", bytes.len()),
                );
            }
            bytes.extend_from_slice(&data);
        }
        let crc = crc32fast::hash(&bytes);
        state.upload.stored.insert(store_uri, bytes);
        return storage_ok(json!({"crc32": format!("{crc:08x}")}));
    }
    let claimed = headers
        .get("content-crc32")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let actual = format!("{:08x}", crc32fast::hash(&body));
    if fault == Some(Fault::CrcMismatch) || claimed.as_deref() != Some(actual.as_str()) {
        return storage_error(
            StatusCode::BAD_REQUEST,
            4016,
            "Content-CRC32 does not match the body",
        );
    }
    if phase == Some("transfer") {
        let id = q.get("uploadid").cloned().unwrap_or_default();
        let number: Option<u32> = q
            .get("part_number")
            .and_then(|n| n.parse().ok())
            .filter(|n| *n >= 1);
        let offset: Option<u64> = q.get("part_offset").and_then(|n| n.parse().ok());
        let (Some(number), Some(offset)) = (number, offset) else {
            return storage_error(
                StatusCode::BAD_REQUEST,
                4003,
                "part_number (from 1) and part_offset are required",
            );
        };
        let Some(upload) = state
            .upload
            .parts
            .get_mut(&id)
            .filter(|u| u.store_uri == store_uri)
        else {
            return storage_error(StatusCode::BAD_REQUEST, 4004, "unknown uploadid");
        };
        upload
            .parts
            .insert(number, (offset, body.to_vec(), crc32fast::hash(&body)));
        return storage_ok(json!({"crc32": actual}));
    }
    state.upload.stored.insert(store_uri, body.to_vec());
    storage_ok(json!({"crc32": actual}))
}

/// `GET /_sandbox/objects/{oid}`: the committed bytes.
pub(crate) async fn object(State(shared): State<Arc<Shared>>, Path(oid): Path<String>) -> Response {
    match shared.lock().upload.objects.get(&oid) {
        Some(o) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            o.bytes.as_ref().clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no committed object {oid}")})),
        )
            .into_response(),
    }
}
