//! TikTok session credentials: a cookie header, a browser cookie export, or a bare
//! `sessionid` value. The value is secret: it has no `Display`, its `Debug` is
//! redacted, and no error message repeats it.

use std::fmt;

use crate::error::{Error, Result};

/// Cookies that carry a login session.
const SESSION_COOKIES: [&str; 3] = ["sessionid", "sessionid_ss", "sid_tt"];

/// A parsed TikTok session. Clone it freely; print it never.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    cookies: Vec<(String, String)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.cookies.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field("cookie_names", &names)
            .field("values", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct ExportedCookie {
    name: String,
    value: String,
    #[serde(default)]
    domain: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Export {
    List(Vec<ExportedCookie>),
    Wrapped { cookies: Vec<ExportedCookie> },
}

fn valid_cookie_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'"' && b != b'\\')
}

impl Credentials {
    /// Reads a session in any of the three accepted forms:
    /// - a JSON cookie export (an array of `{name, value, domain?}` objects, or
    ///   `{"cookies": [...]}`), as browser extensions write it;
    /// - a `Cookie` header string (`name=value; name2=value2`);
    /// - a bare `sessionid` value.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] saying what is wrong, without the value.
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        let input = input
            .strip_prefix("Cookie:")
            .or_else(|| input.strip_prefix("cookie:"))
            .unwrap_or(input)
            .trim();
        if input.is_empty() {
            return Err(Error::InvalidCredentials("the session is empty".into()));
        }
        let cookies = if input.starts_with('[') || input.starts_with('{') {
            let export: Export = serde_json::from_str(input).map_err(|e| {
                Error::InvalidCredentials(format!(
                    "looks like a JSON cookie export but could not be read (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            let list = match export {
                Export::List(l) | Export::Wrapped { cookies: l } => l,
            };
            list.into_iter()
                .filter(|c| {
                    c.domain
                        .as_deref()
                        .is_none_or(|d| d.trim_start_matches('.').ends_with("tiktok.com"))
                })
                .map(|c| (c.name, c.value))
                .collect()
        } else if input.contains('=') {
            input
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect()
        } else {
            if !valid_cookie_value(input) {
                return Err(Error::InvalidCredentials(
                    "a bare sessionid may only contain printable characters without spaces, ';' or ','".into(),
                ));
            }
            vec![("sessionid".to_owned(), input.to_owned())]
        };
        let creds = Self { cookies };
        let has_session = creds
            .cookies
            .iter()
            .any(|(n, v)| SESSION_COOKIES.contains(&n.as_str()) && !v.is_empty());
        if !has_session {
            return Err(Error::InvalidCredentials(
                "no sessionid, sessionid_ss or sid_tt cookie found; export the cookies of a logged-in tiktok.com tab".into(),
            ));
        }
        if let Some((name, _)) = creds
            .cookies
            .iter()
            .find(|(n, v)| n.is_empty() || !valid_cookie_value(v))
        {
            return Err(Error::InvalidCredentials(format!(
                "cookie {name:?} has an empty or invalid value"
            )));
        }
        Ok(creds)
    }

    /// The `Cookie` header value. Secret: never log it.
    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A cookie's value (for non-secret context such as `msToken` or `ttwid`).
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_forms_are_accepted() {
        let bare = Credentials::parse("abc123").unwrap();
        assert_eq!(bare.cookie_header(), "sessionid=abc123");
        let header =
            Credentials::parse("Cookie: ttwid=1%7Cx; sessionid=abc123; msToken=tok").unwrap();
        assert_eq!(header.cookie("msToken"), Some("tok"));
        let export = Credentials::parse(
            r#"[{"name":"sessionid","value":"abc123","domain":".tiktok.com"},{"name":"x","value":"y","domain":"example.com"}]"#,
        )
        .unwrap();
        assert_eq!(export.cookie_header(), "sessionid=abc123");
        let wrapped =
            Credentials::parse(r#"{"cookies":[{"name":"sid_tt","value":"abc123"}]}"#).unwrap();
        assert_eq!(wrapped.cookie("sid_tt"), Some("abc123"));
    }

    #[test]
    fn errors_and_debug_output_never_contain_the_secret() {
        let secret = "s3cr3t-session-value";
        let creds = Credentials::parse(secret).unwrap();
        assert!(!format!("{creds:?}").contains(secret));
        let err = Credentials::parse(&format!("ttwid={secret}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no sessionid") && !err.contains(secret),
            "{err}"
        );
        let err = Credentials::parse(&format!("[{{\"name\":\"{secret}\""))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(
            Credentials::parse("   ")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
