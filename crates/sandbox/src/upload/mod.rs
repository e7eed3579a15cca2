//! The upload backend (PROTOCOL.md 4): credentials from IM cmd 2003, Apply
//! (VOD `ApplyUploadInner` or ImageX `ApplyImageUpload`), the storage node
//! (`/upload/v1/{StoreUri}`, single or part upload with `Content-CRC32`), and
//! Commit with an `Encryption` result. Every step is checked like a strict server.

mod routes;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::Rng as _;
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::GetUploadTokenResponseBody;

use crate::state::{Shared, now_ms};

pub(crate) use routes::{action, object, storage};

/// The SigV4 region the sandbox expects (Douyin's; TikTok's is unknown).
pub(crate) const REGION: &str = "cn-north-1";
/// How long issued credentials stay valid.
pub(crate) const CREDENTIAL_TTL_MS: u64 = 60 * 60 * 1000;

/// Which API the credentials point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadBackend {
    /// VOD: `space_name`, `ApplyUploadInner` / `CommitUploadInner`, service `vod`.
    Vod,
    /// ImageX: `service_id`, `ApplyImageUpload` / `CommitImageUpload`, service `imagex`.
    Imagex,
}

#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) expires_ms: u64,
    pub(crate) uid: Uid,
}

#[derive(Clone, Debug)]
struct ApplySession {
    store_uri: String,
    auth: String,
    backend: UploadBackend,
    uid: Uid,
}

#[derive(Debug, Default)]
struct PartUpload {
    store_uri: String,
    parts: BTreeMap<u32, (u64, Vec<u8>, u32)>,
}

/// A committed image, as receivers would fetch it.
#[derive(Clone, Debug)]
pub(crate) struct StoredObject {
    pub(crate) bytes: Arc<Vec<u8>>,
    pub(crate) md5: String,
    pub(crate) secret_key: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

#[derive(Debug, Default)]
pub(crate) struct UploadState {
    credentials: HashMap<String, Credentials>,
    sessions: HashMap<String, ApplySession>,
    parts: HashMap<String, PartUpload>,
    /// Uploaded, not yet committed: store URI -> bytes.
    stored: HashMap<String, Vec<u8>>,
    /// Committed: oid -> object.
    pub(crate) objects: HashMap<String, StoredObject>,
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Answers cmd 2003: fresh STS-style credentials for `uid`, pointing at this
/// sandbox (`base_url`) as the upload API host.
pub(crate) fn issue_credentials(
    shared: &Shared,
    uid: Uid,
    base_url: &str,
) -> GetUploadTokenResponseBody {
    let access_key = format!("AKSB{}", random_alnum(16));
    let creds = Credentials {
        secret_access_key: random_hex(40),
        session_token: format!("STS2sandbox{}", random_hex(48)),
        expires_ms: now_ms() + CREDENTIAL_TTL_MS,
        uid,
    };
    let backend = shared.upload_backend;
    let body = GetUploadTokenResponseBody {
        access_key: Some(access_key.as_str().into()),
        hosts: vec![base_url.into()],
        token: Some(creds.session_token.as_str().into()),
        token_type: Some(if backend == UploadBackend::Vod { 1 } else { 2 }),
        secret_access_key: Some(creds.secret_access_key.as_str().into()),
        space_name: (backend == UploadBackend::Vod).then(|| "sandbox-im-space".into()),
        service_id: (backend == UploadBackend::Imagex).then(|| "sandbox-im-imagex".into()),
        expire_time: Some((creds.expires_ms / 1000).to_string().into()),
        current_time: Some((now_ms() / 1000).to_string().into()),
        ..GetUploadTokenResponseBody::default()
    };
    shared.lock().upload.credentials.insert(access_key, creds);
    body
}

impl UploadState {
    pub(crate) fn expire_all_credentials(&mut self) {
        for c in self.credentials.values_mut() {
            c.expires_ms = 0;
        }
    }

    fn credentials(&self, access_key: &str) -> Option<Credentials> {
        self.credentials.get(access_key).cloned()
    }
}
