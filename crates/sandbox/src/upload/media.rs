//! Received images: `GET /im/media/{path}`, the URL a received
//! `private_image`'s media block names, which serves the encrypted blob only
//! to a session of a participant of a conversation holding that image (real
//! TikTok fetches these with the session); and the storing of the images
//! `/_sandbox/inbound` sends, encrypted as a `cipher_v2` commit stores them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::Digest as _;
use tiktok_dm_proto::ids::Uid;

use super::{StoredObject, cipher, random_hex, verify};
use crate::http::session_account;
use crate::state::Shared;

/// A path as it goes into a URL: each segment percent-encoded, `/` kept.
pub(crate) fn escape_path(path: &str) -> String {
    path.split('/')
        .map(|segment| verify::encode(segment.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// An image stored encrypted, and what its message names.
pub(crate) struct Sealed {
    pub(crate) path: String,
    pub(crate) key_hex: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// Stores `plain` owned by `owner` at a fresh path, AES-256-GCM encrypted
/// under a fresh key (nonce ‖ ciphertext ‖ tag), as a `cipher_v2` commit
/// does. The error says why the bytes are not an image.
pub(crate) fn store_encrypted(shared: &Shared, owner: Uid, plain: &[u8]) -> Result<Sealed, String> {
    let probe = tiktok_dm_proto::image::probe(plain).map_err(|e| e.to_string())?;
    let sealed = cipher::seal(plain).ok_or("the image could not be encrypted")?;
    let sealed_image = Sealed {
        path: format!("tos-sandbox-i-0001/{}", random_hex(32)),
        key_hex: sealed.key_hex,
        width: probe.width,
        height: probe.height,
        size: plain.len() as u64,
        sha256: tiktok_dm_proto::access_key::hex(&sha2::Sha256::digest(plain)),
    };
    let object = StoredObject {
        owner,
        blob: Arc::new(sealed.blob),
        key_hex: Some(sealed_image.key_hex.clone()),
        width: probe.width,
        height: probe.height,
        size: sealed_image.size,
        sha256: sealed_image.sha256.clone(),
    };
    let path = sealed_image.path.clone();
    shared.lock().upload.objects.insert(path, object);
    Ok(sealed_image)
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /im/media/{path}`: the stored blob (nonce ‖ ciphertext ‖ tag), for a
/// `sessionid` cookie of the image's owner or of a participant of a
/// conversation with a message naming it. 401 without a known session, 403
/// for another account, 404 for no such image.
pub(crate) async fn media(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = session_account(&shared, &headers) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "a session cookie (sessionid) is required",
        );
    };
    let uid = account.uid;
    let state = shared.lock();
    let Some(object) = state.upload.objects.get(&path) else {
        return refused(StatusCode::NOT_FOUND, &format!("no image at {path}"));
    };
    let shown_to = |conversation_id: &str| {
        shared
            .conversation(conversation_id)
            .is_some_and(|c| c.conversation_id.peer_of(uid).is_some())
    };
    let allowed = object.owner == uid
        || state.messages.iter().any(|m| {
            m.body
                .media_info_list
                .iter()
                .any(|media| media.path.as_deref() == Some(path.as_str()))
                && shown_to(&m.received.conversation_id)
        });
    if !allowed {
        return refused(
            StatusCode::FORBIDDEN,
            "this session's account is not in a conversation with this image",
        );
    }
    let blob = Arc::clone(&object.blob);
    drop(state);
    let bytes = blob.as_ref().clone();
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}
