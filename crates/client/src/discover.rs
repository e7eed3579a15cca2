//! Reads the session's own uid and web device id ("wid") from the `/messages`
//! page's hydration data (PROTOCOL.md 1.3).

use serde::Serialize;
use tiktok_dm_proto::ids::{DeviceId, Uid};

use crate::config::Config;
use crate::error::{Error, Result};

/// Who the session is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The account's uid.
    pub uid: Uid,
    /// The web device id.
    pub wid: DeviceId,
    /// The @handle, when the page gave one.
    pub unique_id: Option<String>,
}

const MARKER: &str = "id=\"__UNIVERSAL_DATA_FOR_REHYDRATION__\"";

/// What the hydration data says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Hydration {
    pub(crate) uid: Option<Uid>,
    pub(crate) wid: Option<DeviceId>,
    pub(crate) unique_id: Option<String>,
}

/// Parses `__UNIVERSAL_DATA_FOR_REHYDRATION__` out of the page HTML.
pub(crate) fn parse_hydration(html: &str) -> Result<Hydration> {
    let start = html
        .find(MARKER)
        .ok_or_else(|| Error::Discovery("the page has no hydration data".into()))?;
    let after = &html[start..];
    let open = after
        .find('>')
        .ok_or_else(|| Error::Discovery("hydration script tag is not closed".into()))?;
    let body = &after[open + 1..];
    let end = body
        .find("</script>")
        .ok_or_else(|| Error::Discovery("hydration script has no end".into()))?;
    let data: serde_json::Value = serde_json::from_str(&body[..end])
        .map_err(|e| Error::Discovery(format!("hydration data is not JSON: {e}")))?;
    let ctx = &data["__DEFAULT_SCOPE__"]["webapp.app-context"];
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Ok(Hydration {
        uid: text(&ctx["user"]["uid"]).and_then(|s| Uid::parse(&s).ok()),
        wid: text(&ctx["wid"]).and_then(|s| DeviceId::parse(&s).ok()),
        unique_id: text(&ctx["user"]["uniqueId"]),
    })
}

/// Uses the configured uid and wid, or fetches the messages page for what is missing.
pub(crate) async fn identity(
    http: &crate::http::HttpTransport,
    config: &Config,
) -> Result<Identity> {
    if let (Some(uid), Some(wid)) = (config.uid, config.wid.clone()) {
        return Ok(Identity {
            uid,
            wid,
            unique_id: None,
        });
    }
    let url = format!(
        "{}/messages",
        config.endpoints.web_url.trim_end_matches('/')
    );
    let response = http
        .request(reqwest::Method::GET, &url)
        .timeout(config.connect_timeout)
        .send()
        .await
        .map_err(|e| {
            let cause = crate::http::without_url(&e);
            if e.is_connect() {
                Error::Connect(format!("{url}: {cause}"))
            } else {
                Error::Discovery(format!("{url}: {cause}"))
            }
        })?;
    if !response.status().is_success() {
        return Err(Error::Discovery(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let html = response
        .text()
        .await
        .map_err(|e| Error::Discovery(format!("{url}: {e}")))?;
    let found = parse_hydration(&html)?;
    let uid = match config.uid.or(found.uid) {
        Some(uid) => uid,
        None => {
            return Err(Error::InvalidSession(
                "TikTok shows the messages page as logged out".into(),
            ));
        }
    };
    let wid = config
        .wid
        .clone()
        .or(found.wid)
        .ok_or_else(|| Error::Discovery("the page has no web device id (wid)".into()))?;
    Ok(Identity {
        uid,
        wid,
        unique_id: found.unique_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hydration_data_gives_uid_and_wid() {
        let html = r#"<html><script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{"__DEFAULT_SCOPE__":{"webapp.app-context":{"wid":"7669334412366218765","user":{"uid":"7664958044560016398","uniqueId":"someone"}}}}</script></html>"#;
        let h = parse_hydration(html).unwrap();
        assert_eq!(h.uid.unwrap().get(), 7664958044560016398);
        assert_eq!(h.wid.unwrap().as_str(), "7669334412366218765");
        assert_eq!(h.unique_id.as_deref(), Some("someone"));
    }

    #[test]
    fn a_logged_out_page_has_no_uid_and_a_page_without_data_is_an_error() {
        let html = r#"<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{"__DEFAULT_SCOPE__":{"webapp.app-context":{"wid":"1"}}}</script>"#;
        assert_eq!(parse_hydration(html).unwrap().uid, None);
        assert!(parse_hydration("<html></html>").is_err());
    }
}
