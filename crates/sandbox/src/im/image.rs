//! The checks of a `private_image` (1802) send (PROTOCOL.md 10.3): empty
//! content, scene `private_image`, one asset in `content_pb` naming an upload
//! the sender committed with encryption, the `decrypt_key` that opens the
//! stored blob, and a `send_media_list` naming the same path and key.

use tiktok_dm_proto::content::SCENE_PRIVATE_IMAGE;
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{PrivateImageAsset, SendMessageRequestBody};

use crate::state::{ReceivedImage, Shared};
use crate::upload::StoredObject;

/// A private image whose key opened the committed upload.
#[derive(Clone, Debug)]
pub(super) struct CheckedImage {
    /// What `/_sandbox/messages` shows.
    pub(super) image: ReceivedImage,
    /// The hex key, as sent.
    pub(super) decrypt_key: String,
}

/// Checks the envelope fields and the asset, then opens the committed upload
/// with the asset's key. The error is the description of the refusal.
pub(super) fn check_private_image(
    shared: &Shared,
    sender: Uid,
    send: &SendMessageRequestBody,
) -> Result<CheckedImage, String> {
    check_envelope(send)?;
    let asset = the_one_asset(send)?;
    let (path, key, width, height) = asset_fields(asset)?;
    check_media_list(send, path, key)?;
    let object = committed_upload(shared, sender, path, key)?;
    if (width, height) != (i64::from(object.width), i64::from(object.height)) {
        return Err(format!(
            "asset size {width}x{height} is not the image's {}x{}",
            object.width, object.height
        ));
    }
    let image = ReceivedImage {
        path: path.to_owned(),
        width: object.width,
        height: object.height,
        size: object.size,
        sha256: object.sha256,
    };
    Ok(CheckedImage {
        image,
        decrypt_key: key.to_owned(),
    })
}

/// The envelope: `content` present and empty, and the `private_image` scene.
fn check_envelope(send: &SendMessageRequestBody) -> Result<(), String> {
    match send.content.as_deref() {
        Some("") => {}
        Some(_) => return Err("a private_image's content must be empty".into()),
        None => return Err("a private_image's content must be present (and empty)".into()),
    }
    if send.scene.as_deref() != Some(SCENE_PRIVATE_IMAGE) {
        return Err(format!(
            "a private_image's scene must be {SCENE_PRIVATE_IMAGE:?}"
        ));
    }
    Ok(())
}

/// The single asset of `content_pb.private_image`.
fn the_one_asset(send: &SendMessageRequestBody) -> Result<&PrivateImageAsset, String> {
    let assets = send
        .content_pb
        .as_ref()
        .and_then(|c| c.private_image.as_ref())
        .map(|p| &p.assets[..])
        .unwrap_or_default();
    let [asset] = assets else {
        return Err(format!(
            "content_pb.private_image must hold exactly one asset, found {}",
            assets.len()
        ));
    };
    Ok(asset)
}

/// The first `send_media_list` entry names the asset's path and key.
fn check_media_list(send: &SendMessageRequestBody, path: &str, key: &str) -> Result<(), String> {
    let media = send.send_media_list.first();
    let names_same = media.is_some_and(|m| {
        m.media_kind == Some(1)
            && m.path.as_deref() == Some(path)
            && m.decrypt_key.as_deref() == Some(key)
    });
    if !names_same {
        return Err(
            "send_media_list[0] must be media_kind 1 with the asset's path and decrypt_key".into(),
        );
    }
    Ok(())
}

/// The upload at `path`, committed by `sender` with encryption, whose blob
/// `key` opens.
fn committed_upload(
    shared: &Shared,
    sender: Uid,
    path: &str,
    key: &str,
) -> Result<StoredObject, String> {
    let object = shared.lock().upload.objects.get(path).cloned();
    let Some(object) = object else {
        return Err(format!("asset path {path:?} is not a committed upload"));
    };
    if object.owner != sender {
        return Err(format!(
            "asset path {path:?} was committed with another account's upload credentials"
        ));
    }
    if object.key_hex.is_none() {
        return Err(format!(
            "asset path {path:?} was committed without the Encryption function (cipher_v2)"
        ));
    }
    // The blob was sealed under the commit's key, and AES-GCM opens it under
    // that key only (any other fails the tag): comparing keys is the same
    // test as decrypting, without decrypting up to 20 MB on every send.
    if !object.opens_with(key) {
        return Err("decrypt_key does not open the committed upload".into());
    }
    Ok(object)
}

/// The asset's path, key, width and height, each required.
fn asset_fields(asset: &PrivateImageAsset) -> Result<(&str, &str, i64, i64), String> {
    let path = asset.path.as_deref().unwrap_or_default();
    if path.is_empty() {
        return Err("the asset has no path".into());
    }
    let key = asset.decrypt_key.as_deref().unwrap_or_default();
    if key.is_empty() {
        return Err("the asset has no decrypt_key".into());
    }
    let size = asset.size.as_ref();
    let (Some(width), Some(height)) = (size.and_then(|s| s.width), size.and_then(|s| s.height))
    else {
        return Err("the asset has no size (width and height)".into());
    };
    Ok((path, key, width, height))
}
