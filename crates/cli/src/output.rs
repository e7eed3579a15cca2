//! The JSON shape of a send's result, shared by `send` and `demo`: the original
//! n8n node's `success`, `message`, `usage`, `quota`, plus `messages` and `error`.

use serde::Serialize;
use tiktok_dm_client::compose::{Kind, Outcome};
use tiktok_dm_client::{Error, RetryClass, Transport};

#[derive(Debug, Serialize)]
pub struct SendOutput {
    pub success: bool,
    pub message: String,
    pub messages: Vec<MessageOut>,
    pub usage: Usage,
    /// Always `null` without a gateway: the CLI has no quota of its own.
    pub quota: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

/// 64-bit ids are strings so JavaScript consumers keep every digit.
#[derive(Debug, Serialize)]
pub struct MessageOut {
    pub kind: Kind,
    pub client_message_id: String,
    pub server_message_id: String,
    pub transport: Transport,
}

#[derive(Debug, Default, Serialize)]
pub struct Usage {
    pub messages: u32,
    pub text_messages: u32,
    pub image_messages: u32,
    pub image_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ErrorOut {
    pub code: String,
    pub message: String,
    /// retryable, retry_after, permanent or ambiguous.
    pub retry: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiktok_code: Option<i64>,
    /// For a text and an image: which message failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_message: Option<Kind>,
    /// Messages not attempted because an earlier one failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_sent: Vec<Kind>,
}

impl ErrorOut {
    pub fn from_client(err: &Error) -> Self {
        let (retry, after) = match err.retry_class() {
            RetryClass::Retryable => ("retryable", None),
            RetryClass::RetryAfter(d) => ("retry_after", Some(d.as_secs())),
            RetryClass::Permanent => ("permanent", None),
            RetryClass::Ambiguous => ("ambiguous", None),
        };
        Self {
            code: err.code().to_owned(),
            message: err.to_string(),
            retry,
            retry_after_seconds: after,
            tiktok_code: err.tiktok_code(),
            failed_message: None,
            not_sent: Vec::new(),
        }
    }

    /// The same error with a message that names its source.
    pub fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_input".into(),
            message: message.into(),
            retry: "permanent",
            retry_after_seconds: None,
            tiktok_code: None,
            failed_message: None,
            not_sent: Vec::new(),
        }
    }
}

impl SendOutput {
    /// The result of a composed send: every delivered message, and the
    /// failure (if any) with which message it hit.
    pub fn from_outcome(outcome: Outcome, image_bytes: u64) -> Self {
        let mut usage = Usage::default();
        let messages: Vec<MessageOut> = outcome
            .sent
            .iter()
            .map(|(kind, s)| {
                usage.messages += 1;
                match kind {
                    Kind::Text => usage.text_messages += 1,
                    Kind::Image => {
                        usage.image_messages += 1;
                        usage.image_bytes += image_bytes;
                    }
                }
                MessageOut {
                    kind: *kind,
                    client_message_id: s.client_message_id.to_string(),
                    server_message_id: s.server_message_id.to_string(),
                    transport: s.transport,
                }
            })
            .collect();
        let n = messages.len();
        match outcome.failed {
            None => Self {
                success: true,
                message: if n == 1 {
                    "sent 1 message".into()
                } else {
                    format!("sent {n} messages")
                },
                messages,
                usage,
                quota: None,
                error: None,
            },
            Some((kind, err)) => {
                let mut error = ErrorOut::from_client(&err);
                error.failed_message = Some(kind);
                error.not_sent = outcome.not_attempted;
                let message = if n == 0 {
                    error.message.clone()
                } else {
                    format!("the image was sent but the text was not: {}", error.message)
                };
                Self {
                    success: false,
                    message,
                    messages,
                    usage,
                    quota: None,
                    error: Some(error),
                }
            }
        }
    }

    pub fn failed(error: ErrorOut) -> Self {
        Self {
            success: false,
            message: error.message.clone(),
            messages: Vec::new(),
            usage: Usage::default(),
            quota: None,
            error: Some(error),
        }
    }

    /// Prints the object as one line of JSON on stdout.
    pub fn print(&self) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, self)?;
        writeln!(out)?;
        Ok(())
    }
}

/// Writes `line` and a newline to stdout. A closed stdout (`| head` that has
/// stopped reading) is an error the caller returns, which `main` ends quietly
/// on, where `println!` would panic.
pub fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// [`print_line`] for a server's ready line: a reader that has gone away
/// must not stop the server, so the failure is only logged.
pub fn print_ready_line(line: impl std::fmt::Display) {
    if let Err(e) = print_line(line) {
        tracing::debug!(error = %e, "the ready line could not be written to stdout");
    }
}
