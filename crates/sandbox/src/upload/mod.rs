//! The ImageX upload backend of private images (PROTOCOL.md 10.3): credentials
//! from IM cmd 2059, `ApplyImageUpload`, the storage node
//! (`/upload/v1/{StoreUri}`, single or part upload with `Content-CRC32`), and
//! `CommitImageUpload`, whose `Encryption` function (`cipher_v2`) stores the
//! image AES-256-GCM encrypted and answers its key. Every step is checked like
//! a strict server, the signatures by the sandbox's own SigV4 verifier.

pub(crate) mod cipher;
mod media;
mod routes;
mod storage;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::Rng as _;
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{MediaUploadConfig, MediaUploadConfigResponseBody};

use crate::state::{Shared, now_ms};

pub(crate) use media::{Sealed, escape_path, media, store_encrypted};
pub(crate) use routes::action;
pub(crate) use storage::{object, storage};

/// The SigV4 region the sandbox expects (Douyin's and the working client's).
pub(crate) const REGION: &str = "cn-north-1";
/// The SigV4 service of the ImageX API.
pub(crate) const SERVICE: &str = "imagex";
/// The ImageX API version.
pub(crate) const VERSION: &str = "2018-08-01";
/// The `ServiceId` the sandbox's credentials name.
pub(crate) const SERVICE_ID: &str = "sandbox-im-imagex";
/// How long issued credentials stay valid.
pub(crate) const CREDENTIAL_TTL_MS: u64 = 60 * 60 * 1000;
/// `upload_kind` of ImageX image credentials in cmd 2059.
const UPLOAD_KIND_IMAGEX: i32 = 1;

#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) expires_ms: u64,
    /// The account the credentials were issued to: it owns what they commit.
    pub(crate) uid: Uid,
}

#[derive(Clone, Debug)]
struct ApplySession {
    store_uri: String,
    auth: String,
    uid: Uid,
    /// Named under [`Fault::OddUploadNames`](crate::faults::Fault::OddUploadNames): its part
    /// upload gets an odd upload id too.
    odd_names: bool,
}

#[derive(Debug, Default)]
struct PartUpload {
    store_uri: String,
    parts: BTreeMap<u32, (u64, Vec<u8>, u32)>,
}

/// A committed image: the stored blob (encrypted when the commit asked for
/// `cipher_v2`) and what the sandbox knows of the plain image.
#[derive(Clone, Debug)]
pub(crate) struct StoredObject {
    /// The account whose credentials committed it.
    pub(crate) owner: Uid,
    /// What receivers download: nonce ‖ ciphertext ‖ tag, or the plain image.
    pub(crate) blob: Arc<Vec<u8>>,
    /// The hex key of an encrypted blob (the commit's `SecretKey`); `None`
    /// when the commit asked for no encryption and `blob` is the plain image.
    pub(crate) key_hex: Option<String>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Size of the plain image.
    pub(crate) size: u64,
    /// Lowercase hex SHA-256 of the plain image.
    pub(crate) sha256: String,
}

impl StoredObject {
    /// Whether `key_hex` is the key the blob was sealed under (hex in either
    /// case): the only key AES-GCM opens it with.
    pub(crate) fn opens_with(&self, key_hex: &str) -> bool {
        self.key_hex
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(key_hex))
    }

    /// The plain image. `None` only if the stored key does not open the blob,
    /// which the sandbox never stores.
    pub(crate) fn plain(&self) -> Option<Vec<u8>> {
        match &self.key_hex {
            Some(key) => cipher::open(key, &self.blob),
            None => Some(self.blob.as_ref().clone()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct UploadState {
    credentials: HashMap<String, Credentials>,
    sessions: HashMap<String, ApplySession>,
    parts: HashMap<String, PartUpload>,
    /// Uploaded, not yet committed: store URI -> bytes.
    stored: HashMap<String, Vec<u8>>,
    /// Committed: path -> object.
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

/// Answers cmd 2059: fresh STS-style ImageX credentials for `uid`, naming
/// this sandbox (`host`, the bare `host[:port]` the request was addressed to)
/// as the upload API host. No VOD (kind 2) entry: the sandbox serves no VOD.
pub(crate) fn issue_credentials(
    shared: &Shared,
    uid: Uid,
    host: &str,
) -> MediaUploadConfigResponseBody {
    let access_key = format!("AKSB{}", random_alnum(16));
    let issued = now_ms();
    let creds = Credentials {
        secret_access_key: random_hex(40),
        session_token: format!("STS2sandbox{}", random_hex(48)),
        expires_ms: issued + CREDENTIAL_TTL_MS,
        uid,
    };
    let config = MediaUploadConfig {
        upload_kind: Some(UPLOAD_KIND_IMAGEX),
        service_id: Some(SERVICE_ID.into()),
        host: Some(host.into()),
        expires_at_ms: Some(creds.expires_ms as i64),
        issued_at_ms: Some(issued as i64),
        access_key_id: Some(access_key.as_str().into()),
        security_token: Some(creds.session_token.as_str().into()),
        secret_access_key: Some(creds.secret_access_key.as_str().into()),
        ..MediaUploadConfig::default()
    };
    shared.lock().upload.credentials.insert(access_key, creds);
    MediaUploadConfigResponseBody {
        configs: vec![config],
        ..MediaUploadConfigResponseBody::default()
    }
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
