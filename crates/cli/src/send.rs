//! `tiktok-dm send`: validate everything first, then one session, one send.

use std::process::ExitCode;

use tiktok_dm_client::compose::Outgoing;
use tiktok_dm_client::image::{Image, ImageProblem};
use tiktok_dm_client::{Config, Session, Target};

use crate::args::SendArgs;
use crate::bounded;
use crate::connect::connection_config;
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

/// Turns raw arguments into a plan, or the error to report.
pub fn plan(a: &SendArgs) -> Result<SendPlan, Box<ErrorOut>> {
    fn bad(message: impl Into<String>) -> Box<ErrorOut> {
        Box::new(ErrorOut::invalid_input(message))
    }
    let has_text = a.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !has_text && a.image.is_none() && a.image_base64.is_none() {
        return Err(bad("either text or image must be provided"));
    }
    if a.connection.session.as_deref() == Some("-") && a.image.as_deref() == Some("-") {
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
    let image = read_image(a)?;
    let outgoing = Outgoing::new(a.text.as_deref(), image).map_err(|e| bad(e.to_string()))?;
    let config = connection_config(&a.connection)
        .map_err(bad)?
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
