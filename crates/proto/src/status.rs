//! Status and business codes (PROTOCOL.md 2.6, 2.7) and the classifier that turns a
//! send reply into success or a typed rejection with a retry class.

use std::time::Duration;

use serde::Deserialize;

use crate::ids::ServerMessageId;
use crate::schema::{Response, SendMessageResponseBody};

/// What a caller (the gateway's outbox) may do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Safe to retry now (with backoff): the message was certainly not delivered.
    Retryable,
    /// Safe to retry, but not before this long.
    RetryAfter(Duration),
    /// Retrying will not help.
    Permanent,
    /// The message may or may not have been delivered; retry only with the same
    /// client message id so the server can de-duplicate.
    Ambiguous,
}

/// `Response.status_code` values with a name (PROTOCOL.md 2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusCode {
    /// 0
    Ok,
    /// 1 INVALID_TOKEN
    InvalidToken,
    /// 2 INVALID_TICKET
    InvalidTicket,
    /// 3 CONVERSATION_NOT_FOUND
    ConversationNotFound,
    /// 4 INVALID_REQUEST
    InvalidRequest,
    /// 5 INVALID_CMD
    InvalidCmd,
    /// 6 SERVER_ERR
    ServerErr,
    /// 16 DEGRADATION_ERROR
    Degradation,
    /// 100 EXPIRED_TOKEN
    ExpiredToken,
    /// 429 (SDK: resource exhausted)
    ResourceExhausted,
    /// 500 INTERNAL_ERROR
    InternalError,
    /// 100017 CONV_NOT_FOUND (web dump)
    ConvNotFound,
    /// 200001 gateway rejection (seen live; meaning inferred)
    GatewayRejected,
    /// 200005 INVALID_TOKEN (web dump)
    GatewayInvalidToken,
    /// Any other value.
    Other(i32),
}

impl From<i32> for StatusCode {
    fn from(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::InvalidToken,
            2 => Self::InvalidTicket,
            3 => Self::ConversationNotFound,
            4 => Self::InvalidRequest,
            5 => Self::InvalidCmd,
            6 => Self::ServerErr,
            16 => Self::Degradation,
            100 => Self::ExpiredToken,
            429 => Self::ResourceExhausted,
            500 => Self::InternalError,
            100017 => Self::ConvNotFound,
            200001 => Self::GatewayRejected,
            200005 => Self::GatewayInvalidToken,
            other => Self::Other(other),
        }
    }
}

/// `SendMessageResponseBody.status` values.
pub mod send_status {
    /// 0 SEND_SUCCEED
    pub const SUCCEED: i32 = 0;
    /// 1 USER_NOT_IN_CONVERSATION
    pub const USER_NOT_IN_CONVERSATION: i32 = 1;
    /// 2 CHECK_CONV_NOT_PASS
    pub const CHECK_CONV_NOT_PASS: i32 = 2;
    /// 3 CHECK_MSG_NOT_PASS
    pub const CHECK_MSG_NOT_PASS: i32 = 3;
    /// 4 CHECK_MSG_NOT_PASS_BUT_SELF_VISIBLE
    pub const SELF_VISIBLE_ONLY: i32 = 4;
    /// 5 USER_HAS_BEEN_BLOCKED
    pub const USER_BLOCKED: i32 = 5;
}

/// How long to wait after TikTok says "too fast" when it gives no time itself.
/// Not documented anywhere; a conservative guess.
pub const DEFAULT_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// A business code's meaning, where a source names one (PROTOCOL.md 2.7).
pub fn business_code_meaning(code: i64) -> Option<&'static str> {
    Some(match code {
        7193 => {
            "message request limit: only 1 message before the receiver accepts your message request"
        }
        7195 => "blocked by community guidelines",
        7174 | 7178 | 7192 => "stranger message cap reached",
        7175 => "chat limit reached",
        7180 => "sending too fast",
        7278 => "account suspended",
        7282 => "the receiver accepts messages from friends only",
        7283 => "blocked by the receiver's privacy settings",
        _ => return None,
    })
}

/// A send that TikTok accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendAccepted {
    /// The id the server assigned.
    pub server_message_id: ServerMessageId,
    /// The echoed client message id.
    pub client_message_id: Option<String>,
}

/// A send that TikTok refused at the business level (`status_code` 0, send
/// `status` not 0), e.g. 7193.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessRejection {
    /// `SendMessageResponseBody.status` (see [`send_status`]).
    pub status: i32,
    /// `check_code`.
    pub check_code: i64,
    /// The business code from `check_message` (`status_code` / `raw_check_code`).
    pub code: Option<i64>,
    /// TikTok's tip text for the user, when it gave one.
    pub tips: Option<String>,
    /// `event_tracking.scene`, e.g. "message_request_limit".
    pub scene: Option<String>,
    /// The server id assigned anyway.
    pub server_message_id: Option<i64>,
}

/// Why a send reply is not a success.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendRejection {
    /// The session is not (or no longer) valid: status 1, 100 or 200005.
    #[error(
        "TikTok rejected the session (status {status_code}); log in again and update the session"
    )]
    InvalidSession {
        /// The status code.
        status_code: i32,
    },
    /// The gateway refused the request before the IM service saw it (200001).
    #[error(
        "TikTok's gateway rejected the request (status 200001); it may require browser request signing"
    )]
    GatewayRejected,
    /// The conversation ticket is invalid (2).
    #[error("TikTok rejected the conversation ticket (status 2)")]
    InvalidTicket,
    /// The conversation does not exist for this account (3, 15, 100017).
    #[error("conversation not found (status {status_code})")]
    ConversationNotFound {
        /// The status code.
        status_code: i32,
    },
    /// The request was malformed in the server's view (4, 5).
    #[error("TikTok rejected the request as invalid (status {status_code}: {desc})")]
    InvalidRequest {
        /// The status code.
        status_code: i32,
        /// `error_desc`.
        desc: String,
    },
    /// Rate limited (429, or business code 7180).
    #[error("rate limited by TikTok; retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// A server-side failure (6, 16, 500).
    #[error("TikTok server error (status {status_code}: {desc})")]
    ServerError {
        /// The status code.
        status_code: i32,
        /// `error_desc`.
        desc: String,
    },
    /// The message was refused by a business rule, e.g. 7193.
    #[error("{}", business_message(.0))]
    Business(BusinessRejection),
    /// Status 0 but no send body: the message may have been stored.
    #[error("TikTok answered without a send result")]
    MalformedReply,
    /// Any other status code.
    #[error("TikTok returned status {status_code}: {desc}")]
    Other {
        /// The status code.
        status_code: i32,
        /// `error_desc`.
        desc: String,
    },
}

fn business_message(b: &BusinessRejection) -> String {
    let code = b.code.map_or_else(
        || format!("send status {}", b.status),
        |c| format!("code {c}"),
    );
    match (&b.tips, b.code.and_then(business_code_meaning)) {
        (Some(tips), _) => format!("TikTok refused the message ({code}): {tips}"),
        (None, Some(meaning)) => format!("TikTok refused the message ({code}): {meaning}"),
        (None, None) => format!("TikTok refused the message ({code})"),
    }
}

impl SendRejection {
    /// What a caller may do next.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            Self::RateLimited { retry_after } => RetryClass::RetryAfter(*retry_after),
            Self::ServerError { .. } => RetryClass::Retryable,
            Self::MalformedReply => RetryClass::Ambiguous,
            _ => RetryClass::Permanent,
        }
    }

    /// The TikTok code most useful to report: the business code, or the status code.
    pub fn tiktok_code(&self) -> Option<i64> {
        match self {
            Self::InvalidSession { status_code }
            | Self::ConversationNotFound { status_code }
            | Self::InvalidRequest { status_code, .. }
            | Self::ServerError { status_code, .. }
            | Self::Other { status_code, .. } => Some(i64::from(*status_code)),
            Self::GatewayRejected => Some(200001),
            Self::InvalidTicket => Some(2),
            Self::RateLimited { .. } => None,
            Self::Business(b) => b.code.or(Some(b.check_code)),
            Self::MalformedReply => None,
        }
    }
}

#[derive(Deserialize)]
struct CheckMessage {
    status_code: Option<i64>,
    raw_check_code: Option<i64>,
    tips: Option<String>,
    status_msg: Option<StatusMsg>,
    event_tracking: Option<EventTracking>,
}
#[derive(Deserialize)]
struct StatusMsg {
    msg_content: Option<MsgContent>,
}
#[derive(Deserialize)]
struct MsgContent {
    tips: Option<String>,
}
#[derive(Deserialize)]
struct EventTracking {
    scene: Option<String>,
}

/// Classifies a status code that is not 0 (shared by every cmd).
pub fn classify_status(status_code: i32, desc: &str) -> SendRejection {
    let desc = desc.to_owned();
    match StatusCode::from(status_code) {
        StatusCode::InvalidToken | StatusCode::ExpiredToken | StatusCode::GatewayInvalidToken => {
            SendRejection::InvalidSession { status_code }
        }
        StatusCode::GatewayRejected => SendRejection::GatewayRejected,
        StatusCode::InvalidTicket => SendRejection::InvalidTicket,
        StatusCode::ConversationNotFound | StatusCode::ConvNotFound | StatusCode::Other(15) => {
            SendRejection::ConversationNotFound { status_code }
        }
        StatusCode::InvalidRequest | StatusCode::InvalidCmd => {
            SendRejection::InvalidRequest { status_code, desc }
        }
        StatusCode::ResourceExhausted => SendRejection::RateLimited {
            retry_after: DEFAULT_RATE_LIMIT_BACKOFF,
        },
        StatusCode::ServerErr | StatusCode::Degradation | StatusCode::InternalError => {
            SendRejection::ServerError { status_code, desc }
        }
        StatusCode::Ok | StatusCode::Other(_) => SendRejection::Other { status_code, desc },
    }
}

/// Classifies a cmd-100 reply. Success is `status_code == 0` and send `status == 0`.
///
/// # Errors
/// The typed rejection.
pub fn classify_send_response(resp: &Response) -> Result<SendAccepted, SendRejection> {
    let status_code = resp.status_code.unwrap_or_default();
    if status_code != 0 {
        return Err(classify_status(
            status_code,
            resp.error_desc.as_deref().unwrap_or_default(),
        ));
    }
    let Some(body) = resp
        .body
        .as_ref()
        .and_then(|b| b.send_message_body.as_ref())
    else {
        return Err(SendRejection::MalformedReply);
    };
    classify_send_body(body)
}

fn classify_send_body(body: &SendMessageResponseBody) -> Result<SendAccepted, SendRejection> {
    let status = body.status.unwrap_or_default();
    if status == send_status::SUCCEED {
        let id = body
            .server_message_id
            .and_then(|id| ServerMessageId::new(id).ok());
        return match id {
            Some(server_message_id) => Ok(SendAccepted {
                server_message_id,
                client_message_id: body.client_message_id.as_deref().map(str::to_owned),
            }),
            None => Err(SendRejection::MalformedReply),
        };
    }
    let check: Option<CheckMessage> = body
        .check_message
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let code = check
        .as_ref()
        .and_then(|c| c.status_code.or(c.raw_check_code));
    let tips = check.as_ref().and_then(|c| {
        let nested = c
            .status_msg
            .as_ref()
            .and_then(|m| m.msg_content.as_ref())
            .and_then(|m| m.tips.clone());
        nested.or_else(|| c.tips.clone()).filter(|t| !t.is_empty())
    });
    if code == Some(7180) {
        return Err(SendRejection::RateLimited {
            retry_after: DEFAULT_RATE_LIMIT_BACKOFF,
        });
    }
    Err(SendRejection::Business(BusinessRejection {
        status,
        check_code: body.check_code.unwrap_or_default(),
        code,
        tips,
        scene: check.and_then(|c| c.event_tracking).and_then(|e| e.scene),
        server_message_id: body.server_message_id,
    }))
}
