//! The storage node, `POST /upload/v1/{StoreUri}` (single upload, or part
//! upload with `phase=init|transfer|finish`, each body checked against its
//! `Content-CRC32`), and `GET /_sandbox/objects/{path}`, where tests and users
//! fetch committed images: decrypted by default, the stored blob with
//! `?encrypted=1`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::routes::query_map;
use super::{PartUpload, UploadState, random_hex};
use crate::faults::Fault;
use crate::state::Shared;

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
    // The CRC-32 of a body of up to 64 MB is computed before the state is
    // locked, so a large upload does not hold up every other request.
    let claimed = headers
        .get("content-crc32")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let actual = format!("{:08x}", crc32fast::hash(&body));
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
    let upload = &mut state.upload;
    match q.get("phase").map(String::as_str) {
        Some("init") => return init_parts(upload, store_uri),
        Some("finish") => return finish_parts(upload, store_uri, &q, &body),
        _ => {}
    }
    if fault == Some(Fault::CrcMismatch) || claimed.as_deref() != Some(actual.as_str()) {
        return storage_error(
            StatusCode::BAD_REQUEST,
            4016,
            "Content-CRC32 does not match the body",
        );
    }
    if q.get("phase").map(String::as_str) == Some("transfer") {
        return transfer_part(upload, &store_uri, &q, &body);
    }
    // The copy into the state is made after the lock is let go.
    drop(state);
    let bytes = body.to_vec();
    shared.lock().upload.stored.insert(store_uri, bytes);
    storage_ok(json!({"crc32": actual}))
}

/// `phase=init`: a part upload begins; its id comes back as `uploadid` (one
/// a URL must escape when its Apply was under `OddUploadNames`).
fn init_parts(upload: &mut UploadState, store_uri: String) -> Response {
    let odd = upload
        .sessions
        .values()
        .any(|s| s.store_uri == store_uri && s.odd_names);
    let id = if odd {
        format!("odd id&part_number=9#{}", random_hex(8))
    } else {
        random_hex(32)
    };
    upload.parts.insert(
        id.clone(),
        PartUpload {
            store_uri,
            ..PartUpload::default()
        },
    );
    storage_ok(json!({"uploadid": id}))
}

/// `phase=transfer`: one part, numbered from 1, at its offset.
fn transfer_part(
    upload: &mut UploadState,
    store_uri: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
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
    let Some(parts) = upload
        .parts
        .get_mut(&id)
        .filter(|u| u.store_uri == store_uri)
    else {
        return storage_error(StatusCode::BAD_REQUEST, 4004, "unknown uploadid");
    };
    let crc = crc32fast::hash(body);
    parts.parts.insert(number, (offset, body.to_vec(), crc));
    storage_ok(json!({"crc32": format!("{crc:08x}")}))
}

/// `phase=finish`: the body lists `number:crc32` of every part in order; the
/// parts must follow one another without gaps.
fn finish_parts(
    upload: &mut UploadState,
    store_uri: String,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let id = q.get("uploadid").cloned().unwrap_or_default();
    let Some(parts) = upload
        .parts
        .remove(&id)
        .filter(|u| u.store_uri == store_uri)
    else {
        return storage_error(StatusCode::BAD_REQUEST, 4004, "unknown uploadid");
    };
    let listed: Vec<String> = String::from_utf8_lossy(body)
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let have: Vec<String> = parts
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
    for (n, (offset, data, _)) in parts.parts {
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
    upload.stored.insert(store_uri, bytes);
    storage_ok(json!({"crc32": format!("{crc:08x}")}))
}

/// `GET /_sandbox/objects/{path}`: the committed image, decrypted; with
/// `?encrypted=1`, the blob as stored (for an image committed without
/// encryption, the same bytes).
pub(crate) async fn object(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let encrypted = query_map(&raw.unwrap_or_default())
        .get("encrypted")
        .is_some_and(|v| v == "1" || v == "true");
    let object = shared.lock().upload.objects.get(&path).cloned();
    let bytes = object.and_then(|o| {
        if encrypted {
            Some(o.blob.as_ref().clone())
        } else {
            o.plain()
        }
    });
    match bytes {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no committed object {path}")})),
        )
            .into_response(),
    }
}
