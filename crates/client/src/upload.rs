//! The image pipeline of TikTok web (PROTOCOL.md 10.3): ImageX credentials from
//! IM cmd 2059 (cached until they expire), ApplyImageUpload, upload to the
//! storage node with `Content-CRC32` (one request, or init/transfer/finish
//! parts above the threshold), CommitImageUpload with the `Encryption`
//! function (`cipher_v2`), then the `private_image` (1802) message. The send
//! happens only after a successful commit. Retryable step failures are retried
//! with backoff.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;
use tiktok_dm_proto::codec::{PrivateImage, media_upload_config_request, private_image_request};
use tiktok_dm_proto::content::MESSAGE_TYPE_PRIVATE_IMAGE;
use tiktok_dm_proto::ids::ClientMessageId;
use tiktok_dm_proto::image::ImageFormat;
use tiktok_dm_proto::schema::MediaUploadConfig;
use tiktok_dm_proto::status::classify_status;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::session::{Sent, Session, Target};
use crate::sigv4::{SigningKeys, sign_upload_call};
use crate::upload_hosts::{self, MAX_ANSWER_BYTES, ReadError, UploadBase};

/// `upload_kind` of ImageX image credentials in cmd 2059's answer.
const UPLOAD_KIND_IMAGEX: i32 = 1;

/// The ImageX API version TikTok web calls.
const IMAGEX_VERSION: &str = "2018-08-01";

/// Cached credentials from cmd 2059.
#[derive(Clone, Debug)]
pub(crate) struct UploadCredentials {
    keys: SigningKeys,
    service_id: String,
    api_base: UploadBase,
    valid_until: Instant,
}

/// A committed, encrypted image: what its `private_image` message names. Its
/// `Debug` leaves out the key, which opens the image.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadedImage {
    /// The image's path (`Encryption.Uri`).
    pub path: String,
    /// The hex AES-256-GCM key TikTok encrypted it with (`Encryption.SecretKey`).
    pub decrypt_key: String,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels (from the image header).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The name sent with it, `image.<extension>`.
    pub file_name: String,
}

impl std::fmt::Debug for UploadedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedImage")
            .field("path", &self.path)
            .field("decrypt_key", &"<redacted>")
            .field("size", &self.size)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("file_name", &self.file_name)
            .finish()
    }
}

impl UploadedImage {
    /// The image as its 1802 send describes it.
    pub fn private_image(&self) -> PrivateImage {
        PrivateImage {
            path: self.path.clone(),
            decrypt_key: self.decrypt_key.clone(),
            width: self.width,
            height: self.height,
            size: self.size,
            file_name: self.file_name.clone(),
        }
    }
}

/// The extension ImageX is told (`FileExtension`), with its dot.
fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => ".jpg",
        ImageFormat::Png => ".png",
        ImageFormat::Gif => ".gif",
        ImageFormat::Webp => ".webp",
    }
}

fn step_error(step: &'static str, message: impl Into<String>, retryable: bool) -> Error {
    Error::Upload {
        step,
        message: message.into(),
        retryable,
    }
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_token(n: usize) -> String {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..n)
        .map(|_| char::from(CHARS[rand::random_range(0..CHARS.len())]))
        .collect()
}

/// Runs `attempt` up to `max` times while it fails with a retryable error.
async fn with_retries<T, F, Fut>(max: u32, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e)
                if n < max
                    && matches!(
                        e,
                        Error::Upload {
                            retryable: true,
                            ..
                        }
                    ) =>
            {
                tracing::debug!(error = %e, attempt = n, "retrying an upload step");
                tokio::time::sleep(Duration::from_millis(250 * (1 << n.min(5)))).await;
                n += 1;
            }
            other => return other,
        }
    }
}

/// A failed request as a step error: permanent when the host was refused
/// (it resolves to no public address), retryable otherwise.
fn request_error(step: &'static str, e: &reqwest::Error) -> Error {
    match upload_hosts::refusal(e) {
        Some(refused) => step_error(step, refused, false),
        None => step_error(step, crate::http::without_url(e), true),
    }
}

/// Reads an upload-API JSON answer (at most [`MAX_ANSWER_BYTES`]), turning
/// `ResponseMetadata.Error` and HTTP failures into step errors.
async fn api_json(step: &'static str, result: reqwest::Result<reqwest::Response>) -> Result<Value> {
    let response = result.map_err(|e| request_error(step, &e))?;
    let status = response.status();
    let body = upload_hosts::read_capped(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => step_error(
                step,
                format!(
                    "HTTP {} with an answer over {MAX_ANSWER_BYTES} bytes, not read",
                    status.as_u16()
                ),
                false,
            ),
            ReadError::Http(e) => request_error(step, &e),
        })?;
    let value: Value = serde_json::from_slice(&body).map_err(|_| {
        step_error(
            step,
            format!("HTTP {} with a body that is not JSON", status.as_u16()),
            status.is_server_error(),
        )
    })?;
    let error = &value["ResponseMetadata"]["Error"];
    let code = error["Code"].as_str().or_else(|| {
        value["code"]
            .as_i64()
            .filter(|c| *c != 2000)
            .map(|_| "StorageError")
    });
    if !status.is_success() || code.is_some() {
        let message = error["Message"]
            .as_str()
            .or(value["message"].as_str())
            .unwrap_or("no message");
        let retryable = status.is_server_error()
            || status.as_u16() == 429
            || value["code"].as_i64() == Some(4016);
        let code = code.unwrap_or("HTTPError");
        return Err(step_error(
            step,
            format!("HTTP {} {code}: {message}", status.as_u16()),
            retryable,
        ));
    }
    Ok(value)
}

fn text<'a>(v: &'a Value, step: &'static str, what: &str) -> Result<&'a str> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| step_error(step, format!("the answer has no {what}"), false))
}

struct Applied {
    /// The store URI, escaped as a URL path.
    store_path: String,
    auth: String,
    upload_base: UploadBase,
    session_key: String,
    user_id: Option<String>,
}

impl Session {
    /// Uploads `image` and sends it, with a new client message id.
    ///
    /// # Errors
    /// [`Error::Upload`] for a failed upload step, otherwise as
    /// [`Session::send_content`]. Nothing is sent unless the commit succeeded.
    pub async fn send_image(&self, target: &Target, image: Image) -> Result<Sent> {
        self.send_image_with_id(target, image, &Self::new_client_message_id())
            .await
    }

    /// Uploads `image` and sends it as a `private_image` (1802) message with a
    /// caller-chosen client message id.
    ///
    /// # Errors
    /// As [`Session::send_image`].
    pub async fn send_image_with_id(
        &self,
        target: &Target,
        image: Image,
        id: &ClientMessageId,
    ) -> Result<Sent> {
        let uploaded = self.upload_image(image).await?;
        let params = self.send_params(target, "", MESSAGE_TYPE_PRIVATE_IMAGE, id);
        let request = private_image_request(params, &uploaded.private_image());
        self.send_request(&request, id).await
    }

    /// Uploads, encrypts and commits `image`; the result names the committed
    /// object and its key.
    ///
    /// # Errors
    /// [`Error::Upload`] naming the failed step; [`Error::Rejected`] when TikTok
    /// refuses the credentials call.
    pub async fn upload_image(&self, image: Image) -> Result<UploadedImage> {
        let probe = image.probe();
        let ext = extension(probe.format);
        let bytes = Bytes::from(image.into_bytes());
        let mut refreshed = false;
        loop {
            let creds = self.upload_credentials(refreshed).await?;
            match self.apply_upload_commit(&creds, &bytes, ext).await {
                // Credentials that expired early (clock skew, revocation): fetch
                // new ones once and start again.
                Err(Error::Upload { message, .. })
                    if !refreshed && message.contains("ExpiredToken") =>
                {
                    refreshed = true;
                }
                Err(e) => return Err(e),
                Ok((path, decrypt_key)) => {
                    return Ok(UploadedImage {
                        path,
                        decrypt_key,
                        size: bytes.len() as u64,
                        width: probe.width,
                        height: probe.height,
                        file_name: format!("image{ext}"),
                    });
                }
            }
        }
    }

    async fn apply_upload_commit(
        &self,
        creds: &UploadCredentials,
        bytes: &Bytes,
        ext: &str,
    ) -> Result<(String, String)> {
        let max = self.inner.config.upload.max_attempts;
        let applied = with_retries(max, || self.apply(creds, bytes.len() as u64, ext)).await?;
        if bytes.len() as u64 > self.inner.config.upload.part_threshold {
            self.upload_parts(&applied, bytes).await?;
        } else {
            let url = format!(
                "{}/upload/v1/{}",
                applied.upload_base.as_str(),
                applied.store_path
            );
            with_retries(max, || {
                self.storage_post(&applied, &url, bytes.clone(), "undefined")
            })
            .await?;
        }
        with_retries(max, || self.commit(creds, &applied)).await
    }

    async fn upload_credentials(&self, force: bool) -> Result<UploadCredentials> {
        let mut cached = self.inner.upload_credentials.lock().await;
        if let Some(c) = cached
            .as_ref()
            .filter(|c| !force && c.valid_until > Instant::now())
        {
            return Ok(c.clone());
        }
        let inner = &self.inner;
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let request = media_upload_config_request(seq, &inner.identity.wid);
        // TikTok web asks for these over im-api (PROTOCOL.md 10.3), not the socket.
        let response = self.transmit_http_first(&request).await?;
        let status = response.status_code.unwrap_or_default();
        if status != 0 {
            return Err(classify_status(
                status,
                response.error_desc.as_deref().unwrap_or_default(),
            )
            .into());
        }
        let configs = response
            .body
            .and_then(|b| b.media_upload_config_body)
            .map(|b| b.configs)
            .unwrap_or_default();
        let creds = self.imagex_credentials(&configs)?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// The first complete ImageX entry of cmd 2059's answer.
    fn imagex_credentials(&self, configs: &[MediaUploadConfig]) -> Result<UploadCredentials> {
        let field = |v: &Option<tiktok_dm_proto::wire::PbString>| {
            v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let entry = configs
            .iter()
            .filter(|c| c.upload_kind == Some(UPLOAD_KIND_IMAGEX))
            .find(|c| {
                [
                    &c.service_id,
                    &c.host,
                    &c.access_key_id,
                    &c.secret_access_key,
                ]
                .iter()
                .all(|f| field(f).is_some())
            })
            .ok_or_else(|| {
                step_error(
                    "credentials",
                    "the answer holds no complete ImageX credentials",
                    false,
                )
            })?;
        let missing = || step_error("credentials", "incomplete ImageX credentials", false);
        let keys = SigningKeys {
            access_key_id: field(&entry.access_key_id).ok_or_else(missing)?,
            secret_access_key: field(&entry.secret_access_key).ok_or_else(missing)?,
            session_token: field(&entry.security_token),
        };
        let host = field(&entry.host).ok_or_else(missing)?;
        let api_url = &self.inner.config.endpoints.api_url;
        let api_base = UploadBase::check(&host, api_url, api_url)
            .map_err(|refused| step_error("credentials", refused, false))?;
        // Kept until `expires_at_ms`, less a margin for the calls still to
        // come; ten minutes when the answer gives no expiry.
        let now_ms = unix_secs().saturating_mul(1000);
        let lifetime_ms = entry
            .expires_at_ms
            .and_then(|t| u64::try_from(t).ok())
            .map_or(600_000, |t| t.saturating_sub(now_ms))
            .saturating_sub(self.inner.config.upload.credential_margin.as_millis() as u64);
        Ok(UploadCredentials {
            keys,
            service_id: field(&entry.service_id).ok_or_else(missing)?,
            api_base,
            valid_until: Instant::now() + Duration::from_millis(lifetime_ms),
        })
    }

    /// A request to the ImageX API, signed the ByteDance way (PROTOCOL.md 4.7).
    fn signed_call(
        &self,
        step: &'static str,
        creds: &UploadCredentials,
        method: Method,
        query: &str,
        body: String,
    ) -> Result<reqwest::RequestBuilder> {
        let cfg = &self.inner.config.upload;
        let signed = sign_upload_call(
            &creds.keys,
            method.as_str(),
            query,
            body.as_bytes(),
            &cfg.region,
            &cfg.imagex_service,
            unix_secs(),
        );
        let url = format!("{}/?{query}", creds.api_base.as_str());
        let mut request = creds
            .api_base
            .plain(&self.inner.http, &self.inner.config, method, &url)
            .map_err(|e| step_error(step, e, true))?
            .header("accept", "application/json")
            .header("authorization", signed.authorization)
            .header("x-amz-date", signed.amz_date)
            .timeout(self.inner.config.request_timeout);
        if let Some(sha) = signed.content_sha256 {
            request = request.header("x-amz-content-sha256", sha).body(body);
        }
        if let Some(token) = &creds.keys.session_token {
            request = request.header("x-amz-security-token", token);
        }
        Ok(request)
    }

    async fn apply(&self, creds: &UploadCredentials, size: u64, ext: &str) -> Result<Applied> {
        // Sorted by key: the same string is sent and signed.
        let query = format!(
            "Action=ApplyImageUpload&FileExtension={}&FileSize={size}&ServiceId={}&Version={IMAGEX_VERSION}&s={}",
            crate::frontier::query_escape(ext),
            crate::frontier::query_escape(&creds.service_id),
            random_token(11),
        );
        let request = self.signed_call("apply", creds, Method::GET, &query, String::new())?;
        let v = api_json("apply", request.send().await).await?;
        let addr = &v["Result"]["UploadAddress"];
        let store = &addr["StoreInfos"][0];
        let host = addr["UploadHosts"][0]
            .as_str()
            .ok_or_else(|| step_error("apply", "the answer has no upload host", false))?;
        let api_url = &self.inner.config.endpoints.api_url;
        let upload_base = UploadBase::check(host, creds.api_base.as_str(), api_url)
            .map_err(|refused| step_error("apply", refused, false))?;
        let store_uri = text(&store["StoreUri"], "apply", "StoreUri")?;
        Ok(Applied {
            store_path: upload_hosts::store_path(store_uri)
                .map_err(|refused| step_error("apply", refused, false))?,
            auth: text(&store["Auth"], "apply", "upload Auth")?.to_owned(),
            upload_base,
            session_key: text(&addr["SessionKey"], "apply", "SessionKey")?.to_owned(),
            user_id: store["StorageHeader"]["USER_ID"]
                .as_str()
                .map(str::to_owned),
        })
    }

    /// How long a storage transfer or a commit may take: the request timeout,
    /// but at least 30 s.
    fn storage_timeout(&self) -> Duration {
        self.inner
            .config
            .request_timeout
            .max(Duration::from_secs(30))
    }

    async fn storage_post(
        &self,
        applied: &Applied,
        url: &str,
        body: Bytes,
        filename: &str,
    ) -> Result<Value> {
        let crc = format!("{:08x}", crc32fast::hash(&body));
        let mut request = applied
            .upload_base
            .plain(&self.inner.http, &self.inner.config, Method::POST, url)
            .map_err(|e| step_error("upload", e, true))?
            .header("authorization", &applied.auth)
            .header("content-crc32", &crc)
            .header("content-type", "application/octet-stream")
            .header(
                "content-disposition",
                format!("attachment; filename=\"{filename}\""),
            )
            .timeout(self.storage_timeout())
            .body(body);
        if let Some(user) = &applied.user_id {
            request = request.header("x-storage-u", user);
        }
        let v = api_json("upload", request.send().await).await?;
        if v["data"]["crc32"]
            .as_str()
            .is_some_and(|echo| !echo.eq_ignore_ascii_case(&crc))
        {
            return Err(step_error(
                "upload",
                "the storage node stored different bytes (CRC-32 differs)",
                true,
            ));
        }
        Ok(v)
    }

    async fn upload_parts(&self, applied: &Applied, bytes: &Bytes) -> Result<()> {
        let max = self.inner.config.upload.max_attempts;
        let base = format!(
            "{}/upload/v1/{}",
            applied.upload_base.as_str(),
            applied.store_path
        );
        let init_url = format!("{base}?uploadmode=part&phase=init");
        let init = with_retries(max, || {
            self.storage_post(applied, &init_url, Bytes::new(), "undefined")
        })
        .await?;
        let id = text(&init["data"]["uploadid"], "upload", "uploadid")?;
        let id = crate::frontier::query_escape(id);
        let part = self.inner.config.upload.part_size as usize;
        let mut list = Vec::new();
        for (i, offset) in (0..bytes.len()).step_by(part).enumerate() {
            let chunk = bytes.slice(offset..(offset + part).min(bytes.len()));
            let number = i + 1;
            let url = format!(
                "{base}?uploadid={id}&part_number={number}&phase=transfer&part_offset={offset}"
            );
            with_retries(max, || {
                self.storage_post(applied, &url, chunk.clone(), "undefined")
            })
            .await?;
            list.push(format!("{number}:{:08x}", crc32fast::hash(&chunk)));
        }
        let finish = format!("{base}?uploadmode=part&phase=finish&uploadid={id}");
        let list = Bytes::from(list.join(","));
        with_retries(max, || async {
            let request = applied
                .upload_base
                .plain(&self.inner.http, &self.inner.config, Method::POST, &finish)
                .map_err(|e| step_error("upload", e, true))?
                .header("authorization", &applied.auth)
                .header("content-type", "text/plain;charset=UTF-8")
                .timeout(self.inner.config.request_timeout)
                .body(list.clone());
            api_json("upload", request.send().await).await
        })
        .await?;
        Ok(())
    }

    async fn commit(
        &self,
        creds: &UploadCredentials,
        applied: &Applied,
    ) -> Result<(String, String)> {
        let query = format!(
            "Action=CommitImageUpload&ServiceId={}&Version={IMAGEX_VERSION}",
            crate::frontier::query_escape(&creds.service_id),
        );
        let body = serde_json::json!({
            "SessionKey": applied.session_key,
            "Functions": [{"name": "Encryption", "input": {"Config": {
                "copies": self.inner.config.upload.encryption_copies}}}],
        })
        .to_string();
        // The commit hashes, checks and encrypts the whole image before it
        // answers: as long as an upload may take, not one IM request.
        let request = self
            .signed_call("commit", creds, Method::POST, &query, body)?
            .header("content-type", "application/json")
            .timeout(self.storage_timeout());
        let v = api_json("commit", request.send().await).await?;
        let result = &v["Result"];
        let encryption = &result["Results"][0]["Encryption"];
        let path = result["PluginResult"][0]["ImageUri"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map_or_else(|| text(&encryption["Uri"], "commit", "Encryption.Uri"), Ok)?;
        let key = text(&encryption["SecretKey"], "commit", "Encryption.SecretKey")?;
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(step_error(
                "commit",
                "Encryption.SecretKey is not 64 hexadecimal characters",
                false,
            ));
        }
        Ok((path.to_owned(), key.to_owned()))
    }
}
