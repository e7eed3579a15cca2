//! `tiktok-dm send`: validate everything first, then one session, one send.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target, TransportMode};

use crate::args::SendArgs;
use crate::output::{ErrorOut, SendOutput};

/// Validated arguments.
pub struct SendPlan {
    pub config: Config,
    pub target: Target,
    pub text: MessageText,
}

/// Reads `--session`: a value, `@FILE`, or `-` for stdin. Errors name the file,
/// never the content.
fn read_session(raw: Option<&str>) -> Result<Credentials, String> {
    let raw = raw.ok_or(
        "missing TikTok session: pass --session (a value, @FILE or -) or set TIKTOK_DM_SESSION",
    )?;
    let value = if raw == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read the session from standard input: {e}"))?;
        s
    } else if let Some(path) = raw.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read session file {path}: {e}"))?
    } else {
        raw.to_owned()
    };
    Credentials::parse(&value).map_err(|e| e.to_string())
}

fn endpoints(a: &SendArgs) -> Result<Endpoints, String> {
    if let Some(base) = &a.sandbox {
        return Endpoints::sandbox(base).map_err(|e| e.to_string());
    }
    let mut e = Endpoints::tiktok();
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

/// Turns raw arguments into a plan, or a message for the user.
pub fn plan(a: &SendArgs) -> Result<SendPlan, String> {
    let text = a.text.as_deref().unwrap_or_default();
    if text.trim().is_empty() {
        return Err("either text or image must be provided".into());
    }
    let text = MessageText::parse(text).map_err(|e| e.to_string())?;
    let id = a
        .conversation_id
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let id = id.ok_or("missing conversation id: pass --conversation-id")?;
    let short = a
        .conversation_short_id
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let short = short.ok_or("missing conversation short id: pass --conversation-short-id")?;
    let target = Target::parse(id, short).map_err(|e| e.to_string())?;
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
    let config = Config::builder(credentials)
        .endpoints(endpoints(a)?)
        .transport(transport)
        .request_timeout(Duration::from_secs_f64(a.timeout))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SendPlan {
        config,
        target,
        text,
    })
}

/// Connects and sends; the result in the shared JSON shape.
pub async fn execute(plan: SendPlan) -> SendOutput {
    let session = match Session::connect(plan.config).await {
        Ok(s) => s,
        Err(e) => return SendOutput::failed(ErrorOut::from_client(&e)),
    };
    let id = Session::new_client_message_id();
    let result = session
        .send_text_with_id(&plan.target, &plan.text, &id)
        .await;
    session.close();
    match result {
        Ok(sent) => SendOutput::sent(&[sent]),
        Err(e) => SendOutput::failed(ErrorOut::from_client(&e)),
    }
}

pub async fn run(a: SendArgs) -> anyhow::Result<ExitCode> {
    let plan = match plan(&a) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            SendOutput::failed(ErrorOut::invalid_input(message)).print()?;
            return Ok(ExitCode::from(2));
        }
    };
    let output = execute(plan).await;
    output.print()?;
    Ok(if output.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
