//! The one place where the domain's values become column values and back,
//! for both backends. A stored value that does not read back as its type is
//! [`Error::Corrupt`] on a read, and a [`CorruptMessage`] in a claim (so one
//! bad row does not stop every delivery).

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::types::{
    ACCOUNT_SEPARATOR, AccountInfo, AccountStatus, Claimed, ClientMessageId, Content,
    CorruptMessage, DeliveryError, FailureCode, Kind, MessageStatus, MessageText, NewRequest,
    OutboxMessage, State, StoredImage, Target, storable,
};
use crate::webhooks::{Webhook, WebhookOutcome};

/// A kind by its stored name.
pub(crate) fn kind(name: &str) -> Result<Kind> {
    Kind::from_name(name).ok_or_else(|| Error::Corrupt(format!("message kind {name:?}")))
}

/// A client message id as stored.
fn client_message_id(raw: &str) -> Result<ClientMessageId> {
    ClientMessageId::parse(raw).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A target's columns: `conversation_id` (text), `conversation_short_id`
/// (integer) and `inbox_type` (integer).
pub(crate) fn target_columns(target: &Target) -> (&str, i64, i32) {
    (
        target.conversation_id.as_str(),
        target.conversation_short_id.get(),
        target.inbox_type,
    )
}

/// A target from its columns.
fn target(conversation_id: &str, conversation_short_id: i64, inbox_type: i32) -> Result<Target> {
    let target = Target::parse(conversation_id, &conversation_short_id.to_string())
        .map_err(|e| Error::Corrupt(format!("the stored target: {e}")))?;
    Ok(Target {
        inbox_type,
        ..target
    })
}

/// What an outbox row takes per message, as [`outbox_rows`] computes it.
pub(crate) struct OutboxRow<'a> {
    pub(crate) position: i64,
    pub(crate) kind: &'static str,
    pub(crate) text: Option<&'a str>,
    pub(crate) image: Option<&'a [u8]>,
    pub(crate) image_bytes: i64,
    /// `sending` for a first message claimed with its acceptance, else
    /// `accepted` (a later message waits for the one before it).
    pub(crate) state: &'static str,
    pub(crate) locked_until: Option<i64>,
    pub(crate) attempts: i64,
    /// 1 for a message claimed with its acceptance (its first claim), else 0.
    pub(crate) claim_token: i64,
}

/// Each message's outbox row values when `request` is accepted at `now`.
pub(crate) fn outbox_rows(request: &NewRequest, now: i64) -> Vec<OutboxRow<'_>> {
    request
        .messages
        .iter()
        .enumerate()
        .map(|(position, m)| {
            let lease = request.claim_first_ms.filter(|_| position == 0);
            let (text, image) = match &m.content {
                Content::Text(t) => (Some(t.as_str()), None),
                Content::Image(bytes) => (None, Some(bytes.as_slice())),
            };
            OutboxRow {
                position: position as i64,
                kind: m.content.kind().as_str(),
                text,
                image,
                image_bytes: image.map_or(0, |i| i.len() as i64),
                state: if lease.is_some() {
                    State::Sending.as_str()
                } else {
                    State::Accepted.as_str()
                },
                locked_until: lease.map(|ms| now + ms),
                attempts: i64::from(lease.is_some()),
                claim_token: i64::from(lease.is_some()),
            }
        })
        .collect()
}

/// A claimed outbox row joined with its request, as both backends read it.
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    pub(crate) request_id: String,
    pub(crate) position: i64,
    pub(crate) kind: String,
    pub(crate) client_message_id: String,
    pub(crate) text: Option<String>,
    pub(crate) image_bytes: i64,
    /// Attempts before this claim.
    pub(crate) attempts: i64,
    /// This claim's token (as raised by it).
    pub(crate) token: i64,
    /// The request's acceptance time.
    pub(crate) accepted_at: i64,
    /// Attempts that reached TikTok.
    pub(crate) transmissions: i64,
    /// Whether a later message of its request waits for it.
    pub(crate) followed: bool,
    pub(crate) api_key_id: i64,
    pub(crate) conversation_id: String,
    pub(crate) conversation_short_id: i64,
    pub(crate) account: Option<String>,
    pub(crate) session_sealed: Option<Vec<u8>>,
    /// The request's inbox type.
    pub(crate) inbox_type: i32,
    /// Its lane, and the key it is paced by.
    pub(crate) lane: String,
    pub(crate) pace_key: String,
    /// Its pacing slot, once planned (see `lanes::plan`).
    pub(crate) send_at: i64,
}

impl ClaimedRow {
    /// The message the row holds, or why it holds none.
    pub(crate) fn into_claimed(self) -> Claimed {
        let (id, token, request_id) = (self.id, self.token, self.request_id.clone());
        self.message().map_err(|e| CorruptMessage {
            id,
            token,
            request_id,
            why: e.to_string(),
        })
    }

    fn message(self) -> Result<OutboxMessage> {
        let content = match kind(&self.kind)? {
            Kind::Text => {
                let text = self.text.unwrap_or_default();
                Content::Text(
                    MessageText::parse(&text)
                        .map_err(|e| Error::Corrupt(format!("the stored text: {e}")))?,
                )
            }
            Kind::Image => Content::Image(StoredImage {
                size: u64::try_from(self.image_bytes)
                    .map_err(|_| Error::Corrupt(format!("image size {}", self.image_bytes)))?,
                bytes: None,
            }),
        };
        Ok(OutboxMessage {
            id: self.id,
            client_message_id: client_message_id(&self.client_message_id)?,
            target: target(
                &self.conversation_id,
                self.conversation_short_id,
                self.inbox_type,
            )?,
            request_id: self.request_id,
            position: self.position,
            content,
            attempts: self.attempts + 1,
            token: self.token,
            accepted_at: self.accepted_at,
            transmissions: self.transmissions,
            followed: self.followed,
            api_key_id: self.api_key_id,
            account: self.account,
            session_sealed: self.session_sealed,
            lane: self.lane,
            send_at: self.send_at,
        })
    }
}

/// A message's status as both backends read it.
pub(crate) struct StatusRow {
    pub(crate) kind: String,
    pub(crate) client_message_id: String,
    pub(crate) state: String,
    pub(crate) server_message_id: Option<String>,
    pub(crate) transport: Option<String>,
    pub(crate) attempts: i64,
    pub(crate) error: Option<String>,
}

impl StatusRow {
    /// The status the row holds.
    pub(crate) fn status(self) -> Result<MessageStatus> {
        Ok(MessageStatus {
            kind: kind(&self.kind)?,
            client_message_id: client_message_id(&self.client_message_id)?,
            state: State::parse(&self.state)?,
            server_message_id: self.server_message_id,
            transport: self.transport,
            attempts: self.attempts,
            error: self.error.as_deref().map(delivery_error),
        })
    }
}

/// A delivery error as JSON: `code`, `message`, and `tiktok_code` when there
/// is one. This is also how the `error` column holds it.
pub(crate) fn delivery_error_json(e: &DeliveryError) -> Value {
    let mut json = json!({"code": e.code(), "message": e.message()});
    if let DeliveryError::Send { tiktok_code, .. } = e {
        json["tiktok_code"] = json!(tiktok_code);
    }
    json
}

/// A delivery error as the `error` column holds it.
pub(crate) fn delivery_error_column(e: &DeliveryError) -> String {
    delivery_error_json(e).to_string()
}

/// A delivery error from its column: one that does not read back (a code
/// this version does not know) is [`DeliveryError::Corrupt`].
pub(crate) fn delivery_error(column: &str) -> DeliveryError {
    let corrupt = || DeliveryError::Corrupt {
        message: "the recorded delivery error cannot be read".into(),
    };
    let Ok(json) = serde_json::from_str::<Value>(column) else {
        return corrupt();
    };
    let code = json["code"].as_str().unwrap_or_default();
    let message = json["message"].as_str().unwrap_or_default().to_owned();
    match code {
        "not_attempted" => DeliveryError::NotAttempted,
        "stored_message_corrupt" => DeliveryError::Corrupt { message },
        other => match FailureCode::from_name(other) {
            Some(code) => DeliveryError::Send {
                code,
                message,
                tiktok_code: json["tiktok_code"].as_i64(),
            },
            None => corrupt(),
        },
    }
}

/// A stored account's row as both backends read it (`ACCOUNT_COLUMNS`).
pub(crate) struct AccountRow {
    pub(crate) name: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) listen: bool,
    pub(crate) status: String,
    pub(crate) status_changed_at: i64,
}

/// The columns an [`AccountRow`] is read from, in its fields' order.
pub(crate) const ACCOUNT_COLUMNS: &str =
    "name, created_at, updated_at, listen, status, status_changed_at";

impl AccountRow {
    /// The account the row holds.
    pub(crate) fn info(self) -> Result<AccountInfo> {
        Ok(AccountInfo {
            status: account_status(&self.status)?,
            name: self.name,
            created_at: self.created_at,
            updated_at: self.updated_at,
            listen: self.listen,
            status_changed_at: self.status_changed_at,
        })
    }
}

/// An account status by its stored name.
fn account_status(name: &str) -> Result<AccountStatus> {
    match name {
        "active" => Ok(AccountStatus::Active),
        "expired" => Ok(AccountStatus::Expired),
        other => Err(Error::Corrupt(format!("account status {other:?}"))),
    }
}

/// The columns a webhook is read from, in the order of [`WebhookRow`]; each
/// backend adds its event types, joined by U+001F in their order (as a key's
/// accounts).
pub(crate) const WEBHOOK_COLUMNS: &str = "w.id, w.api_key_id, w.url, w.secret_sealed, w.created_at";

/// A webhook's row as both backends read it ([`WEBHOOK_COLUMNS`], then its
/// event types).
pub(crate) struct WebhookRow {
    pub(crate) id: String,
    pub(crate) key_id: i64,
    pub(crate) url: String,
    pub(crate) secret_sealed: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) events: Option<String>,
}

impl WebhookRow {
    /// The webhook the row holds.
    pub(crate) fn webhook(self) -> Webhook {
        let events = self
            .events
            .map(|j| j.split(ACCOUNT_SEPARATOR).map(str::to_owned).collect())
            .unwrap_or_default();
        Webhook {
            id: self.id,
            key_id: self.key_id,
            url: self.url,
            events,
            secret_sealed: self.secret_sealed,
            created_at: self.created_at,
        }
    }
}

/// What a delivery's outcome writes: its state, its next attempt's time
/// (for a retry), and its error (kept on a retry, cleared once delivered).
/// An error is the gateway's text, from an endpoint's answer maybe: a
/// U+0000, which PostgreSQL's `text` cannot hold, is written as U+FFFD rather
/// than lose the outcome.
pub(crate) fn outcome_columns(
    outcome: &WebhookOutcome,
) -> (&'static str, Option<i64>, Option<String>) {
    match outcome {
        WebhookOutcome::Delivered => ("delivered", None, None),
        WebhookOutcome::Retry { at } => ("pending", Some(*at), None),
        WebhookOutcome::GaveUp { error } => ("failed", None, Some(error.replace('\0', "\u{fffd}"))),
    }
}

/// A filter's list as SQLite takes it, a JSON array of strings (read with
/// `json_each`); `None` for no list (every value matches).
pub(crate) fn json_list(list: Option<&[String]>) -> Option<String> {
    list.map(|l| Value::from(l.to_vec()).to_string())
}

/// A filter's list as PostgreSQL takes it (`= ANY($n)`), without the values
/// its `text` cannot hold (no stored value has them, so they match nothing
/// either way); `None` for no list.
pub(crate) fn text_list(list: Option<&[String]>) -> Option<Vec<&str>> {
    list.map(|l| {
        l.iter()
            .map(String::as_str)
            .filter(|s| storable(s))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delivery_error_reads_back_as_it_was_written() {
        let mut errors = vec![
            DeliveryError::NotAttempted,
            DeliveryError::Corrupt {
                message: "the stored text".into(),
            },
        ];
        for code in FailureCode::ALL {
            errors.push(DeliveryError::Send {
                code: *code,
                message: format!("{code} happened"),
                tiktok_code: Some(7193),
            });
        }
        for e in errors {
            assert_eq!(delivery_error(&delivery_error_column(&e)), e);
        }
    }

    #[test]
    fn an_unknown_code_reads_as_the_gateways_own_failure() {
        let e = delivery_error(r#"{"code":"sticker_refused","message":"x"}"#);
        assert!(matches!(e, DeliveryError::Corrupt { .. }), "{e:?}");
        assert!(matches!(delivery_error("{"), DeliveryError::Corrupt { .. }));
    }
}
