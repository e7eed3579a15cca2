//! The session and endpoints of `send`, `listen` and `conversations`.

use std::time::Duration;

use tiktok_dm_client::{Config, ConfigBuilder, Credentials, Endpoints, TransportMode};

use crate::args::ConnectionArgs;
use crate::bounded;

/// Reads `--session`: a value, `@FILE`, or `-` for stdin. Errors name the file,
/// never the content.
fn read_session(raw: Option<&str>) -> Result<Credentials, String> {
    let raw = raw.ok_or(
        "missing TikTok session: pass --session (a value, @FILE or -) or set TIKTOK_DM_SESSION",
    )?;
    let value = match bounded::read_session_source(raw) {
        Some(read) => read?,
        None => raw.to_owned(),
    };
    Credentials::parse(&value).map_err(|e| e.to_string())
}

fn endpoints(a: &ConnectionArgs) -> Result<Endpoints, String> {
    if let Some(base) = &a.sandbox {
        return Endpoints::sandbox(base).map_err(|e| e.to_string());
    }
    let hosts = a
        .tiktok_hosts
        .parse()
        .map_err(|e: tiktok_dm_client::Error| e.to_string())?;
    let mut e = Endpoints::tiktok_hosts(hosts);
    if let Some(v) = &a.ws_url {
        e.ws_url = v.clone();
    }
    if let Some(v) = &a.api_url {
        e.api_url = v.clone();
    }
    if let Some(v) = &a.web_url {
        e.web_url = v.clone();
    }
    Ok(e)
}

/// A client configuration from the connection arguments, or what is wrong
/// with them (never the session's value).
pub fn connection_config(a: &ConnectionArgs) -> Result<ConfigBuilder, String> {
    let transport: TransportMode = a
        .transport
        .parse()
        .map_err(|e: tiktok_dm_client::Error| e.to_string())?;
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= 600.0) {
        return Err(format!(
            "--timeout must be between 0 and 600 seconds, got {}",
            a.timeout
        ));
    }
    let credentials = read_session(a.session.as_deref())?;
    Ok(Config::builder(credentials)
        .endpoints(endpoints(a)?)
        .transport(transport)
        .request_timeout(Duration::from_secs_f64(a.timeout)))
}
