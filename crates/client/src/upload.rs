//! The image pipeline (PROTOCOL.md 4): credentials from IM cmd 2003 (cached until
//! they expire), Apply, upload to the storage node with `Content-CRC32` (one
//! request, or init/transfer/finish parts above the threshold), Commit with the
//! Encryption function, then the image message. The send happens only after a
//! successful commit. Retryable step failures are retried with backoff.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::im_request;
use tiktok_dm_proto::content::{ImageContent, image_content_json};
use tiktok_dm_proto::ids::ClientMessageId;
use tiktok_dm_proto::schema::{GetUploadTokenRequestBody, RequestBody};
use tiktok_dm_proto::status::classify_status;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::session::{Sent, Session, Target};
use crate::sigv4::{SigningKeys, sign_upload_call};

/// Which upload API the credentials describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Vod,
    Imagex,
}

/// Cached credentials from cmd 2003.
#[derive(Clone, Debug)]
pub(crate) struct UploadCredentials {
    keys: SigningKeys,
    backend: Backend,
    /// `space_name` (VOD) or `service_id` (ImageX).
    target: String,
    api_base: String,
    valid_until: Instant,
}

/// A committed image: what the content JSON needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedImage {
    /// `Encryption.Uri` (ImageX: `ImageUri`).
    pub oid: String,
    /// `Encryption.SecretKey`.
    pub skey: String,
    /// Lowercase hex MD5 of the file.
    pub md5: String,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

fn step_error(step: &'static str, message: impl Into<String>, retryable: bool) -> Error {
    Error::Upload {
        step,
        message: message.into(),
        retryable,
    }
}

fn unix_secs() -> u64 {
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

/// A host from the credentials or Apply, as a base URL. Bare host names get the
/// scheme of `like` (https for TikTok, http for a local sandbox).
fn base_url(host: &str, like: &str) -> String {
    if host.contains("://") {
        host.trim_end_matches('/').to_owned()
    } else {
        let scheme = if like.starts_with("http://") {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", host.trim_end_matches('/'))
    }
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

/// Reads an upload-API JSON answer, turning `ResponseMetadata.Error` and HTTP
/// failures into step errors.
async fn api_json(step: &'static str, result: reqwest::Result<reqwest::Response>) -> Result<Value> {
    let response = result.map_err(|e| step_error(step, crate::http::without_url(&e), true))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| step_error(step, crate::http::without_url(&e), true))?;
    let value: Value = serde_json::from_str(&text).map_err(|_| {
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
    store_uri: String,
    auth: String,
    upload_base: String,
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

    /// Uploads `image` and sends it with a caller-chosen client message id.
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
        let cfg = &self.inner.config.upload;
        let content = image_content_json(&ImageContent {
            oid: &uploaded.oid,
            skey: &uploaded.skey,
            data_size: uploaded.size,
            md5: &uploaded.md5,
            width: uploaded.width,
            height: uploaded.height,
            awe_type: cfg.awe_type,
        });
        self.send_content(target, cfg.message_type, &content, id)
            .await
    }

    /// Uploads and commits `image`; the result names the committed object.
    ///
    /// # Errors
    /// [`Error::Upload`] naming the failed step; [`Error::Rejected`] when TikTok
    /// refuses the credentials call.
    pub async fn upload_image(&self, image: Image) -> Result<UploadedImage> {
        let probe = image.probe();
        let md5 = image.md5_hex();
        let bytes = Bytes::from(image.into_bytes());
        let mut refreshed = false;
        loop {
            let creds = self.upload_credentials(refreshed).await?;
            match self.apply_upload_commit(&creds, &bytes).await {
                // Credentials that expired early (clock skew, revocation): fetch
                // new ones once and start again.
                Err(Error::Upload { message, .. })
                    if !refreshed && message.contains("ExpiredToken") =>
                {
                    refreshed = true;
                }
                Err(e) => return Err(e),
                Ok((oid, skey)) => {
                    return Ok(UploadedImage {
                        oid,
                        skey,
                        md5,
                        size: bytes.len() as u64,
                        width: probe.width,
                        height: probe.height,
                    });
                }
            }
        }
    }

    async fn apply_upload_commit(
        &self,
        creds: &UploadCredentials,
        bytes: &Bytes,
    ) -> Result<(String, String)> {
        let max = self.inner.config.upload.max_attempts;
        let applied = with_retries(max, || self.apply(creds, bytes.len() as u64)).await?;
        if bytes.len() as u64 > self.inner.config.upload.part_threshold {
            self.upload_parts(&applied, bytes).await?;
        } else {
            let url = format!("{}/upload/v1/{}", applied.upload_base, applied.store_uri);
            with_retries(max, || {
                self.storage_post(&applied, &url, bytes.clone(), "image")
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
        let cfg = &inner.config.upload;
        let body = RequestBody {
            get_upload_token_body: Some(GetUploadTokenRequestBody {
                token_type: Some(cfg.token_type),
                ..Default::default()
            }),
            ..RequestBody::default()
        };
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let request = im_request(
            cmd::GET_MEDIA_UPLOAD_TOKEN,
            seq,
            0,
            body,
            Vec::new(),
            &inner.identity.wid,
        );
        let (response, _) = self.transmit(&request).await?;
        let status = response.status_code.unwrap_or_default();
        if status != 0 {
            return Err(classify_status(
                status,
                response.error_desc.as_deref().unwrap_or_default(),
            )
            .into());
        }
        let token = response
            .body
            .and_then(|b| b.get_upload_token_body)
            .ok_or_else(|| step_error("credentials", "the answer has no upload token", false))?;
        let field = |v: &Option<tiktok_dm_proto::wire::PbString>| {
            v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let (backend, target) = match (field(&token.space_name), field(&token.service_id)) {
            (Some(space), _) => (Backend::Vod, space),
            (None, Some(service)) => (Backend::Imagex, service),
            (None, None) => {
                return Err(step_error(
                    "credentials",
                    "the answer names neither a space nor a service",
                    false,
                ));
            }
        };
        let keys = SigningKeys {
            access_key_id: field(&token.access_key)
                .ok_or_else(|| step_error("credentials", "no access key", false))?,
            secret_access_key: field(&token.secret_access_key)
                .ok_or_else(|| step_error("credentials", "no secret key", false))?,
            session_token: field(&token.token),
        };
        let fallback = if backend == Backend::Vod {
            &cfg.vod_api
        } else {
            &cfg.imagex_api
        };
        let api_base = token
            .hosts
            .first()
            .map_or_else(|| fallback.clone(), |h| base_url(h, fallback));
        // `expire_time` is Unix seconds in the sandbox; its real format is not
        // known, so anything else is treated as "10 minutes".
        let lifetime = token
            .expire_time
            .as_deref()
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(600, |t| t.saturating_sub(unix_secs()))
            .saturating_sub(60);
        let creds = UploadCredentials {
            keys,
            backend,
            target,
            api_base,
            valid_until: Instant::now() + Duration::from_secs(lifetime),
        };
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// A request to the upload API, signed the ByteDance way (PROTOCOL.md 4.7).
    fn signed_call(
        &self,
        creds: &UploadCredentials,
        method: Method,
        query: &str,
        body: String,
        service: &str,
    ) -> reqwest::RequestBuilder {
        let region = &self.inner.config.upload.region;
        let signed = sign_upload_call(
            &creds.keys,
            method.as_str(),
            query,
            body.as_bytes(),
            region,
            service,
            unix_secs(),
        );
        let mut request = self
            .inner
            .http
            .plain(method, &format!("{}/?{query}", creds.api_base))
            .header("authorization", signed.authorization)
            .header("x-amz-date", signed.amz_date)
            .timeout(self.inner.config.request_timeout);
        if let Some(sha) = signed.content_sha256 {
            request = request.header("x-amz-content-sha256", sha).body(body);
        }
        if let Some(token) = &creds.keys.session_token {
            request = request.header("x-amz-security-token", token);
        }
        request
    }

    async fn apply(&self, creds: &UploadCredentials, size: u64) -> Result<Applied> {
        // Sorted by key: the same string is sent and signed.
        let s = random_token(11);
        let (query, service) = match creds.backend {
            Backend::Vod => (
                format!(
                    "Action=ApplyUploadInner&FileSize={size}&FileType=image&IsInner=1&NeedFallback=true&SpaceName={}&Version=2020-11-19&s={s}",
                    crate::frontier::query_escape(&creds.target)
                ),
                self.inner.config.upload.vod_service.as_str(),
            ),
            Backend::Imagex => (
                format!(
                    "Action=ApplyImageUpload&ServiceId={}&Version=2018-08-01&s={s}",
                    crate::frontier::query_escape(&creds.target)
                ),
                self.inner.config.upload.imagex_service.as_str(),
            ),
        };
        let request = self.signed_call(creds, Method::GET, &query, String::new(), service);
        let v = api_json("apply", request.send().await).await?;
        let (store, host, session_key) = match creds.backend {
            Backend::Vod => {
                let node = &v["Result"]["InnerUploadAddress"]["UploadNodes"][0];
                let host = node["UploadHost"]
                    .as_str()
                    .or(node["UploadHosts"][0].as_str());
                (&node["StoreInfos"][0], host, &node["SessionKey"])
            }
            Backend::Imagex => {
                let addr = &v["Result"]["UploadAddress"];
                (
                    &addr["StoreInfos"][0],
                    addr["UploadHosts"][0].as_str(),
                    &addr["SessionKey"],
                )
            }
        };
        Ok(Applied {
            store_uri: text(&store["StoreUri"], "apply", "StoreUri")?.to_owned(),
            auth: text(&store["Auth"], "apply", "upload Auth")?.to_owned(),
            upload_base: base_url(
                host.ok_or_else(|| step_error("apply", "the answer has no upload host", false))?,
                &creds.api_base,
            ),
            session_key: text(session_key, "apply", "SessionKey")?.to_owned(),
            user_id: store["StorageHeader"]["USER_ID"]
                .as_str()
                .map(str::to_owned),
        })
    }

    async fn storage_post(
        &self,
        applied: &Applied,
        url: &str,
        body: Bytes,
        filename: &str,
    ) -> Result<Value> {
        let crc = format!("{:08x}", crc32fast::hash(&body));
        let mut request = self
            .inner
            .http
            .plain(Method::POST, url)
            .header("authorization", &applied.auth)
            .header("content-crc32", &crc)
            .header("content-type", "application/octet-stream")
            .header(
                "content-disposition",
                format!("attachment; filename=\"{filename}\""),
            )
            .timeout(
                self.inner
                    .config
                    .request_timeout
                    .max(Duration::from_secs(30)),
            )
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
        let base = format!("{}/upload/v1/{}", applied.upload_base, applied.store_uri);
        let init_url = format!("{base}?uploadmode=part&phase=init");
        let init = with_retries(max, || {
            self.storage_post(applied, &init_url, Bytes::new(), "undefined")
        })
        .await?;
        let id = text(&init["data"]["uploadid"], "upload", "uploadid")?.to_owned();
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
            let request = self
                .inner
                .http
                .plain(Method::POST, &finish)
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
        let (query, body, service) = match creds.backend {
            Backend::Vod => (
                format!("Action=CommitUploadInner&SpaceName={}&Version=2020-11-19", crate::frontier::query_escape(&creds.target)),
                serde_json::json!({"SessionKey": applied.session_key, "Functions": [{"name": "Encryption", "input": {
                    "Config": {"copies": "cipher_v2"}, "PolicyParams": {"policy-set": "check,thumb,medium,large"}}}]})
                .to_string(),
                self.inner.config.upload.vod_service.as_str(),
            ),
            Backend::Imagex => (
                format!(
                    "Action=CommitImageUpload&ServiceId={}&SessionKey={}&Version=2018-08-01",
                    crate::frontier::query_escape(&creds.target),
                    crate::frontier::query_escape(&applied.session_key)
                ),
                String::new(),
                self.inner.config.upload.imagex_service.as_str(),
            ),
        };
        let request = self
            .signed_call(creds, Method::POST, &query, body, service)
            .header("content-type", "text/plain;charset=UTF-8");
        let v = api_json("commit", request.send().await).await?;
        match creds.backend {
            Backend::Vod => {
                let enc = &v["Result"]["Results"][0]["Encryption"];
                Ok((
                    text(&enc["Uri"], "commit", "Encryption.Uri")?.to_owned(),
                    text(&enc["SecretKey"], "commit", "Encryption.SecretKey")?.to_owned(),
                ))
            }
            Backend::Imagex => {
                let plugin = &v["Result"]["PluginResult"][0];
                Ok((
                    text(&plugin["ImageUri"], "commit", "ImageUri")?.to_owned(),
                    plugin["SecretKey"].as_str().unwrap_or_default().to_owned(),
                ))
            }
        }
    }
}
