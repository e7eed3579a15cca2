//! `tiktok-dm send`: validate everything first, then one session, one send.

use std::process::ExitCode;
use std::time::Duration;

use tiktok_dm_client::compose::Outgoing;
use tiktok_dm_client::image::{Image, ImageProblem};
use tiktok_dm_client::{Config, Credentials, Endpoints, Session, Target, TransportMode};

use crate::args::SendArgs;
use crate::bounded;
use crate::output::{ErrorOut, SendOutput};

/// Validated arguments.
pub struct SendPlan {
    pub config: Config,
    pub target: Target,
    pub outgoing: Outgoing,
}

fn image_error(source: &str, problem: ImageProblem) -> Box<ErrorOut> {
    Box::new(
        ErrorOut::from_client(&tiktok_dm_client::Error::InvalidImage(problem.clone()))
            .with_message(format!("{source}: {problem}")),
    )
}

/// Reads `--image` (a file, or `-` for stdin) or `--image-base64` (a value or
/// `@FILE`). A file over the limit is refused before it is read.
fn read_image(a: &SendArgs) -> Result<Option<Image>, Box<ErrorOut>> {
    let bad = |m: String| Box::new(ErrorOut::invalid_input(m));
    let limit = a.image_limit;
    if let Some(path) = a.image.as_deref() {
        let bytes = if path == "-" {
            bounded::read("-", limit)
                .map_err(|e| bad(format!("cannot read the image from standard input: {e}")))?
        } else {
            // A regular file's size is known before reading; the bounded read
            // covers devices and pipes, whose size is not.
            let meta = std::fs::metadata(path)
                .map_err(|e| bad(format!("cannot read image file {path}: {e}")))?;
            if meta.len() > limit {
                return Err(image_error(
                    path,
                    ImageProblem::TooLarge {
                        size: meta.len(),
                        limit,
                    },
                ));
            }
            bounded::read(path, limit)
                .map_err(|e| bad(format!("cannot read image file {path}: {e}")))?
        };
        return Image::from_bytes(bytes, limit)
            .map(Some)
            .map_err(|p| image_error(if path == "-" { "standard input" } else { path }, p));
    }
    if let Some(value) = a.image_base64.as_deref() {
        let (text, source) = match value.strip_prefix('@') {
            Some(path) => {
                // Base64 is 4/3 of the bytes, plus room for line breaks and a
                // data URI's header.
                let cap = limit.saturating_mul(4) / 3 + 64 * 1024;
                let text =
                    bounded::read_text(path, cap, &format!("base64 file {path}")).map_err(bad)?;
                (text, path.to_owned())
            }
            None => (value.to_owned(), "--image-base64".to_owned()),
        };
        return Image::from_text(&text, limit)
            .map(Some)
            .map_err(|p| image_error(&source, p));
    }
    Ok(None)
}

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

fn endpoints(a: &SendArgs) -> Result<Endpoints, String> {
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

/// Turns raw arguments into a plan, or the error to report.
pub fn plan(a: &SendArgs) -> Result<SendPlan, Box<ErrorOut>> {
    fn bad(message: impl Into<String>) -> Box<ErrorOut> {
        Box::new(ErrorOut::invalid_input(message))
    }
    let has_text = a.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !has_text && a.image.is_none() && a.image_base64.is_none() {
        return Err(bad("either text or image must be provided"));
    }
    if a.session.as_deref() == Some("-") && a.image.as_deref() == Some("-") {
        return Err(bad(
            "--session - and --image - cannot both read standard input",
        ));
    }
    let id = a
        .conversation_id
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let id = id.ok_or_else(|| bad("missing conversation id: pass --conversation-id"))?;
    let short = a
        .conversation_short_id
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let short =
        short.ok_or_else(|| bad("missing conversation short id: pass --conversation-short-id"))?;
    let target = Target::parse(id, short).map_err(|e| bad(e.to_string()))?;
    let transport: TransportMode = a
        .transport
        .parse()
        .map_err(|e: tiktok_dm_client::Error| bad(e.to_string()))?;
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= 600.0) {
        return Err(bad(format!(
            "--timeout must be between 0 and 600 seconds, got {}",
            a.timeout
        )));
    }
    let image = read_image(a)?;
    let outgoing = Outgoing::new(a.text.as_deref(), image).map_err(|e| bad(e.to_string()))?;
    let credentials = read_session(a.session.as_deref()).map_err(bad)?;
    let config = Config::builder(credentials)
        .endpoints(endpoints(a).map_err(bad)?)
        .transport(transport)
        .request_timeout(Duration::from_secs_f64(a.timeout))
        .image_limit(a.image_limit)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(SendPlan {
        config,
        target,
        outgoing,
    })
}

/// Connects and sends; the result in the shared JSON shape.
pub async fn execute(plan: SendPlan) -> SendOutput {
    let session = match Session::connect(plan.config).await {
        Ok(s) => s,
        Err(e) => return SendOutput::failed(ErrorOut::from_client(&e)),
    };
    let image_bytes = plan
        .outgoing
        .image()
        .map_or(0, tiktok_dm_client::image::Image::len);
    let outcome = session.send_outgoing(&plan.target, plan.outgoing).await;
    session.close();
    SendOutput::from_outcome(outcome, image_bytes)
}

pub async fn run(a: SendArgs) -> anyhow::Result<ExitCode> {
    let plan = match plan(&a) {
        Ok(p) => p,
        Err(error) => {
            eprintln!("error: {}", error.message);
            SendOutput::failed(*error).print()?;
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
