//! Received images: the encrypted blob a `private_image` names, fetched with
//! the session (TikTok serves media to a participant's session) and opened
//! with the message's key: AES-256-GCM, blob = nonce (12) ‖ ciphertext ‖
//! tag (16), as a `cipher_v2` commit stores it (PROTOCOL.md 10.3).
//!
//! The session cookie goes where a browser's would: only to `tiktok.com` and
//! its subdomains (the session cookies' domain), or to the configured API
//! host (a sandbox). A media host elsewhere (a CDN domain of its own) is
//! asked without it, with the browser's Origin and Referer, as a browser asks
//! it. No redirect is followed (the shared client follows none), the URL must
//! be http(s) (plain http only when the configured API URL is plain http
//! itself, a local sandbox), and carry no user name. The blob is read up to
//! the image limit plus the 28 bytes of nonce and tag.

use reqwest::Url;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use tiktok_dm_proto::events::ReceivedImage;

use crate::error::{Error, Result};
use crate::session::Session;
use crate::upload_hosts::{ReadError, read_capped};

/// The bytes an encrypted blob has beyond its image: nonce and tag.
pub const BLOB_OVERHEAD: usize = NONCE_LEN + 16;
/// The shortest time a media download is given (an image of several
/// megabytes takes longer than an IM request).
const MIN_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Session {
    /// Fetches a received image from its first URL with this session, and
    /// opens it with its key: the image's bytes.
    ///
    /// # Errors
    /// [`Error::MediaInvalid`] when the image names no URL or one that is not
    /// to be fetched, the key is not 32 bytes of hex, the blob is over the
    /// image limit, or it does not open under the key (its tag does not
    /// verify); [`Error::HttpStatus`] for any answer but 200 (a redirect
    /// too: none is followed); [`Error::Connect`], [`Error::Timeout`] or
    /// [`Error::ConnectionLost`] when the fetch fails.
    pub async fn fetch_image(&self, image: &ReceivedImage) -> Result<Vec<u8>> {
        let config = &self.inner.config;
        let key = parse_key(&image.decrypt_key)?;
        let url = media_url(image, &config.endpoints.api_url)?;
        let cap = usize::try_from(config.image_limit)
            .unwrap_or(usize::MAX)
            .saturating_add(BLOB_OVERHEAD);
        let timeout = config.request_timeout.max(MIN_FETCH_TIMEOUT);
        // A host other than the configured one must resolve to public
        // addresses only: the cookie never reaches a private network.
        let base = crate::upload_hosts::UploadBase::check(
            url.as_str(),
            url.as_str(),
            &config.endpoints.api_url,
        )
        .map_err(|_| {
            Error::MediaInvalid(
                "the image's URL names a loopback, private or reserved address, or another scheme than the API's".into(),
            )
        })?;
        let http = &self.inner.http;
        let request = if sends_cookie(&url, &config.endpoints.api_url) {
            base.with_session(http, reqwest::Method::GET, url.as_str())
        } else {
            base.plain(http, config, reqwest::Method::GET, url.as_str())
                .map(|r| {
                    r.header(reqwest::header::ORIGIN, "https://www.tiktok.com")
                        .header(reqwest::header::REFERER, "https://www.tiktok.com/messages")
                })
        }
        .map_err(Error::MediaInvalid)?;
        let sent = request.timeout(timeout).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(Error::Connect(crate::http::without_url(&e))),
            Err(e) if e.is_timeout() => return Err(Error::Timeout(timeout)),
            Err(e) => return Err(Error::ConnectionLost(crate::http::without_url(&e))),
        };
        // A refusal (401, 403: not a participant's session, or a URL past its
        // time) is not taken as the session's end: the account's socket and
        // sends say that.
        let status = response.status().as_u16();
        if status != 200 {
            return Err(Error::HttpStatus { status });
        }
        let blob = match read_capped(response, cap).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(Error::MediaInvalid(format!(
                    "the image's blob is over {cap} bytes (the image limit and 28)"
                )));
            }
            Err(ReadError::Http(e)) if e.is_timeout() => return Err(Error::Timeout(timeout)),
            Err(ReadError::Http(e)) => {
                return Err(Error::ConnectionLost(crate::http::without_url(&e)));
            }
        };
        open_blob(&key, blob)
    }
}

/// The first URL of `image`, if it may be fetched with the session.
fn media_url(image: &ReceivedImage, api_url: &str) -> Result<Url> {
    let named = image
        .urls
        .first()
        .ok_or_else(|| Error::MediaInvalid("the image names no URL".into()))?;
    let url = Url::parse(named)
        .map_err(|_| Error::MediaInvalid("the image's URL is not a URL".into()))?;
    let plain_allowed = api_url.trim_start().starts_with("http://");
    match url.scheme() {
        "https" => {}
        "http" if plain_allowed => {}
        other => {
            return Err(Error::MediaInvalid(format!(
                "the image's URL is {other}://; media is fetched over https only"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() || url.host_str().is_none() {
        return Err(Error::MediaInvalid(
            "the image's URL has no host, or carries a user name".into(),
        ));
    }
    Ok(url)
}

/// Whether a browser would send the `.tiktok.com` session cookies to `url`:
/// its host is `tiktok.com` or under it (domain match, RFC 6265 5.1.3), or
/// it is the configured API host (a sandbox standing in for TikTok).
fn sends_cookie(url: &Url, api_url: &str) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let configured = Url::parse(api_url.trim()).ok();
    if configured.as_ref().and_then(Url::host_str) == Some(host.as_str()) {
        return true;
    }
    host == "tiktok.com" || host.ends_with(".tiktok.com")
}

/// The 32-byte key from its hex form.
fn parse_key(hex: &str) -> Result<[u8; 32]> {
    let bad = || Error::MediaInvalid("the image's key is not 32 bytes of hex".into());
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => *byte = (hi * 16 + lo) as u8,
            _ => return Err(bad()),
        }
    }
    Ok(key)
}

/// Opens nonce ‖ ciphertext ‖ tag under `key`.
///
/// # Errors
/// [`Error::MediaInvalid`] when the blob is too short or its tag does not
/// verify (a wrong key, or altered bytes).
pub(crate) fn open_blob(key: &[u8; 32], mut blob: Vec<u8>) -> Result<Vec<u8>> {
    if blob.len() < BLOB_OVERHEAD {
        return Err(Error::MediaInvalid(format!(
            "the image's blob is {} bytes, shorter than a nonce and a tag",
            blob.len()
        )));
    }
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| Error::MediaInvalid("the image's key is not an AES-256 key".into()))?;
    let key = LessSafeKey::new(unbound);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[..NONCE_LEN]);
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut blob[NONCE_LEN..],
        )
        .map_err(|_| {
            Error::MediaInvalid(
                "the image's blob does not open under its key (the tag does not verify)".into(),
            )
        })?
        .len();
    blob.copy_within(NONCE_LEN..NONCE_LEN + plain_len, 0);
    blob.truncate(plain_len);
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::NONCE_LEN;

    fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], plain: &[u8]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let mut in_out = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut in_out,
        )
        .unwrap();
        [nonce.to_vec(), in_out].concat()
    }

    #[test]
    fn the_cookie_goes_only_where_a_browser_would_send_it() {
        let api = "https://im-api.tiktok.com";
        let sends = |u: &str| sends_cookie(&Url::parse(u).unwrap(), api);
        assert!(sends("https://im-api.tiktok.com/v1/x"));
        assert!(sends("https://im-media.tiktok.com/obj"));
        assert!(sends("https://TikTok.com./obj"));
        assert!(!sends("https://p16-im.tiktokcdn.com/obj"), "a CDN domain");
        assert!(!sends("https://evil.tiktok.com.attacker.example/obj"));
        assert!(!sends("https://nottiktok.com/obj"));
        assert!(!sends("https://203.0.113.9/obj"));
        // A sandbox standing in for TikTok on loopback.
        let local = |u: &str| sends_cookie(&Url::parse(u).unwrap(), "http://127.0.0.1:4000");
        assert!(local("http://127.0.0.1:4000/im/media/x"));
        assert!(!local("http://127.0.0.2:4000/im/media/x"));
    }

    #[test]
    fn a_blob_opens_under_its_key_and_not_under_another() {
        let key = [7u8; 32];
        let blob = seal(&key, [1; NONCE_LEN], b"\x89PNG image bytes");
        assert_eq!(
            open_blob(&key, blob.clone()).unwrap(),
            b"\x89PNG image bytes"
        );
        let err = open_blob(&[8u8; 32], blob.clone()).unwrap_err();
        assert!(matches!(err, Error::MediaInvalid(_)), "{err}");
        assert!(err.to_string().contains("tag does not verify"), "{err}");
        let mut altered = blob;
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            open_blob(&key, altered),
            Err(Error::MediaInvalid(_))
        ));
        assert!(matches!(
            open_blob(&key, vec![0; 27]),
            Err(Error::MediaInvalid(_))
        ));
    }

    #[test]
    fn keys_are_64_hex_digits() {
        let hex = "00ff".repeat(16);
        let key = parse_key(&hex).unwrap();
        assert_eq!(key[0], 0);
        assert_eq!(key[1], 0xff);
        assert!(parse_key("00ff").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }

    fn image(url: &str) -> ReceivedImage {
        ReceivedImage {
            path: "p".into(),
            urls: vec![url.into()],
            decrypt_key: String::new(),
            width: None,
            height: None,
        }
    }

    #[test]
    fn only_http_urls_are_fetched_and_plain_http_only_beside_a_plain_api() {
        let tiktok = "https://im-api.tiktok.com";
        let sandbox = "http://127.0.0.1:9";
        assert!(media_url(&image("https://p16.tiktokcdn.com/a?x=1"), tiktok).is_ok());
        assert!(media_url(&image("http://127.0.0.1:9/im/media/a"), sandbox).is_ok());
        for (url, api) in [
            ("http://p16.tiktokcdn.com/a", tiktok),
            ("file:///etc/passwd", sandbox),
            ("ftp://host/a", sandbox),
            ("https://user:pw@host/a", tiktok),
            ("not a url", tiktok),
        ] {
            assert!(
                matches!(media_url(&image(url), api), Err(Error::MediaInvalid(_))),
                "{url}"
            );
        }
        let none = ReceivedImage {
            urls: vec![],
            ..image("x")
        };
        assert!(matches!(
            media_url(&none, tiktok),
            Err(Error::MediaInvalid(_))
        ));
    }
}
