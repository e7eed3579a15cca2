//! The JSON shape of a send's result, shared by `send` and `demo`: the original
//! n8n node's `success`, `message`, `usage`, `quota`, plus `messages` and `error`.

use serde::Serialize;
use tiktok_dm_client::{Error, RetryClass, Sent, Transport};

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
    pub kind: &'static str,
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
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_input".into(),
            message: message.into(),
            retry: "permanent",
            retry_after_seconds: None,
            tiktok_code: None,
        }
    }
}

impl SendOutput {
    pub fn sent(sent: &[Sent]) -> Self {
        let messages: Vec<MessageOut> = sent
            .iter()
            .map(|s| MessageOut {
                kind: "text",
                client_message_id: s.client_message_id.to_string(),
                server_message_id: s.server_message_id.to_string(),
                transport: s.transport,
            })
            .collect();
        let n = messages.len() as u32;
        Self {
            success: true,
            message: if n == 1 {
                "sent 1 message".into()
            } else {
                format!("sent {n} messages")
            },
            messages,
            usage: Usage {
                messages: n,
                text_messages: n,
                ..Usage::default()
            },
            quota: None,
            error: None,
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
