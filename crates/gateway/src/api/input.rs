//! Reading a send request: JSON or multipart form data, into one validated shape.
//!
//! Both forms carry the same fields. JSON: `conversation_id`,
//! `conversation_short_id` (string or number; may be left out, to be found
//! from the inbox), or `to_uid` instead of both, `text`,
//! `image: {base64 | data_uri}`, `account`. Multipart: the same names as text parts, and `image` either as a
//! file part (raw bytes) or as a text part holding base64 or a data URI.

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tiktok_dm_client::compose::Outgoing;
use tiktok_dm_client::image::{Image, ImageProblem};
use tiktok_dm_proto::access_key::hex;
use tiktok_dm_proto::content::MessageText;
use tiktok_dm_proto::ids::{ConversationId, ConversationShortId, Uid};
use tiktok_dm_proto::message::Target;

use tiktok_dm_store::Store;
use tokio::sync::OwnedSemaphorePermit;

use super::error::{ApiError, ErrorCode};
use crate::admin;
use crate::state::AppState;

/// A send's body, read as JSON or as a multipart form by its Content-Type
/// (axum's `parse-body-based-on-content-type` pattern), once there is room
/// for it: bodies being read and decoded stay within `request_memory`
/// together, and a send beyond waits with its body unread (TCP holds its
/// sender back).
pub(crate) struct SendBody {
    /// The fields as they arrived.
    pub input: SendInput,
    /// The room the body and its decoded image take, until accepted.
    pub room: Option<OwnedSemaphorePermit>,
}

impl<S: Store> FromRequest<AppState<S>> for SendBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState<S>) -> Result<Self, ApiError> {
        let room = body_room(state, request.headers()).await;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_form = is_form(content_type.as_deref());
        let limit = state.settings.image_limit;
        let input = if is_form {
            let form = Multipart::from_request(request, state)
                .await
                .map_err(|e| ApiError::new(ErrorCode::InvalidForm, e.body_text()))?;
            SendInput::from_multipart(form, limit).await?
        } else {
            let raw = Bytes::from_request(request, state).await.map_err(|e| {
                let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::BodyTooLarge
                } else {
                    ErrorCode::InvalidBody
                };
                ApiError::new(code, e.body_text())
            })?;
            SendInput::from_json(&raw, content_type.as_deref())?
        };
        Ok(Self { input, room })
    }
}

/// Whether a Content-Type names a multipart form (media types are
/// case-insensitive: `Multipart/Form-Data` is one too).
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.trim_start()
            .get(..19)
            .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
    })
}

/// A body declared this small needs no room: it holds no image worth
/// counting, and a text send must not queue behind image uploads (the
/// semaphore is first come, first served).
const SMALL_BODY: u64 = 64 * 1024;

/// The room in [`AppState::body_room`] a send whose body is not read yet
/// takes: its declared length twice (the body, and the image decoded from
/// it), or the largest body twice when no length is declared; `None` for a
/// small body, which takes none.
pub(crate) fn room_needed<S: Store>(state: &AppState<S>, headers: &HeaderMap) -> Option<u64> {
    let limit = crate::api::body_limit(&state.settings);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(limit)
        .min(limit);
    (declared > SMALL_BODY).then(|| declared.saturating_mul(2))
}

/// Room for a send whose body is not read yet ([`room_needed`]).
async fn body_room<S: Store>(
    state: &AppState<S>,
    headers: &HeaderMap,
) -> Option<OwnedSemaphorePermit> {
    state.body_room.take(room_needed(state, headers)?).await
}

/// The JSON body of a send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    conversation_id: Option<String>,
    /// A string or a number (n8n sends either).
    conversation_short_id: Option<Value>,
    /// A string or a number, like the short id.
    to_uid: Option<Value>,
    text: Option<String>,
    image: Option<JsonImage>,
    account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonImage {
    base64: Option<String>,
    data_uri: Option<String>,
}

/// How the image arrived.
#[derive(Debug, Default)]
enum RawImage {
    #[default]
    None,
    /// base64 or a data URI.
    Text(String),
    /// A file part's bytes.
    Bytes(Vec<u8>),
}

/// A send request as it arrived, before validation.
#[derive(Debug, Default)]
pub(crate) struct SendInput {
    conversation_id: Option<String>,
    conversation_short_id: Option<Value>,
    to_uid: Option<Value>,
    text: Option<String>,
    image: RawImage,
    /// A stored account to send as.
    pub account: Option<String>,
}

/// Where a send goes, as far as its request says.
#[derive(Debug)]
pub(crate) enum Address {
    /// Both ids given.
    Known(Target),
    /// To be found from the inbox when the send is accepted.
    Find(Lookup),
}

/// A conversation to find from the sending account's inbox.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A conversation whose short id is not given.
    Conversation(ConversationId),
    /// The 1:1 conversation with this user (`to_uid`).
    User(Uid),
}

/// The validated parts of a send.
pub(crate) struct Validated {
    pub address: Address,
    pub outgoing: Outgoing,
}

impl SendInput {
    /// Reads a JSON body (whatever `content_type` says, so that `curl -d`
    /// without a Content-Type works; the error names it when it is not JSON).
    pub fn from_json(raw: &[u8], content_type: Option<&str>) -> Result<Self, ApiError> {
        // A UTF-8 byte order mark, which some Windows tools write, is not JSON.
        let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
        let body: JsonBody = serde_json::from_slice(raw).map_err(|e| {
            let message = if raw.trim_ascii_start().first() == Some(&b'{') {
                format!("the body is not a valid send request: {e}")
            } else {
                let sent = content_type
                    .filter(|c| !c.contains("json"))
                    .map(|c| format!(" (this one is {c})"))
                    .unwrap_or_default();
                format!(
                    "the body must be a JSON object (or multipart/form-data){sent}, \
                     with conversation_id, conversation_short_id and text or image"
                )
            };
            ApiError::new(ErrorCode::InvalidJson, message)
        })?;
        let image = match body.image {
            Some(JsonImage {
                base64: Some(b),
                data_uri: None,
            })
            | Some(JsonImage {
                base64: None,
                data_uri: Some(b),
            }) => RawImage::Text(b),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::ImageInvalid,
                    "image must have exactly one of base64 and data_uri",
                ));
            }
            None => RawImage::None,
        };
        check_account(body.account.as_deref())?;
        Ok(Self {
            conversation_id: body.conversation_id,
            conversation_short_id: body.conversation_short_id,
            to_uid: body.to_uid,
            text: body.text,
            image,
            account: body.account,
        })
    }

    /// Reads a multipart form. Unknown parts are refused, like unknown JSON
    /// fields, and so is a field given twice (JSON refuses a duplicate key):
    /// keeping one of two images or texts would drop the other unseen.
    pub async fn from_multipart(mut form: Multipart, image_limit: u64) -> Result<Self, ApiError> {
        let mut input = Self::default();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut once = |field: &'static str| {
            if seen.contains(&field) {
                return Err(ApiError::new(
                    ErrorCode::InvalidForm,
                    format!("the form has more than one {field:?} field; send one of each"),
                ));
            }
            seen.push(field);
            Ok(())
        };
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            let is_file = field.file_name().is_some()
                || field
                    .content_type()
                    .is_some_and(|c| !c.starts_with("text/plain"));
            if name == "image" && is_file {
                let bytes = read_limited(field, image_limit).await?;
                if !bytes.is_empty() {
                    once("image")?;
                    input.image = RawImage::Bytes(bytes.to_vec());
                }
                continue;
            }
            let text = read_text_part(field, &name).await?;
            let slot = match name.as_str() {
                "conversation_id" => {
                    once("conversation_id")?;
                    &mut input.conversation_id
                }
                "text" => {
                    once("text")?;
                    &mut input.text
                }
                "account" => {
                    once("account")?;
                    &mut input.account
                }
                "conversation_short_id" => {
                    once("conversation_short_id")?;
                    input.conversation_short_id = Some(Value::String(text));
                    continue;
                }
                "to_uid" => {
                    once("to_uid")?;
                    input.to_uid = Some(Value::String(text));
                    continue;
                }
                "image" | "image_base64" | "image_data_uri" => {
                    if !text.trim().is_empty() {
                        once("image")?;
                        input.image = RawImage::Text(text);
                    }
                    continue;
                }
                other => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidForm,
                        format!("unknown form field {other:?}"),
                    ));
                }
            };
            *slot = Some(text);
        }
        input.account = input.account.filter(|a| !a.trim().is_empty());
        check_account(input.account.as_deref())?;
        Ok(input)
    }

    /// Checks every field; the image is decoded and probed here.
    pub fn validate(self, image_limit: u64) -> Result<Validated, ApiError> {
        let address = address(
            self.conversation_id.as_deref(),
            self.conversation_short_id.as_ref(),
            self.to_uid.as_ref(),
        )?;
        let image = match self.image {
            RawImage::None => None,
            RawImage::Text(t) => Some(Image::from_text(&t, image_limit).map_err(image_error)?),
            RawImage::Bytes(b) => Some(Image::from_bytes(b, image_limit).map_err(image_error)?),
        };
        let text = self
            .text
            .filter(|t| !t.trim().is_empty())
            .map(|t| text(&t))
            .transpose()?;
        let outgoing = Outgoing::from_parts(text, image).ok_or_else(|| {
            ApiError::new(
                ErrorCode::MessageEmpty,
                "either text or image must be provided",
            )
        })?;
        Ok(Validated { address, outgoing })
    }
}

impl Validated {
    /// The hash that tells a replay from another request under the same
    /// idempotency key: of the request as given (so that a replay is known
    /// before a missing short id is looked up), sent as `account` (`None`:
    /// with its own session). A request giving both ids hashes as it always
    /// has.
    pub fn request_hash(&self, account: Option<&str>) -> String {
        let (conversation, short_id) = match &self.address {
            Address::Known(t) => (
                json!(t.conversation_id.as_str()),
                json!(t.conversation_short_id.get()),
            ),
            Address::Find(Lookup::Conversation(id)) => (json!(id.as_str()), Value::Null),
            Address::Find(Lookup::User(uid)) => (json!({"to_uid": uid.get()}), Value::Null),
        };
        let image_md5 = self.outgoing.image().map(Image::md5_hex);
        let text = self.outgoing.text().map(MessageText::as_str);
        let given = json!([conversation, short_id, text, image_md5, account]);
        hex(&Sha256::digest(given.to_string()))
    }
}

/// A JSON id field given as a string or a number: `Ok(None)` when left out,
/// null or blank; `Err(())` when it is neither a string nor a number.
fn id_field(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(()),
    }
}

/// Where the send goes: both ids, a conversation id alone (its short id is
/// found from the inbox when the send is accepted), or `to_uid` alone.
fn address(
    conversation_id: Option<&str>,
    short_id: Option<&Value>,
    to_uid: Option<&Value>,
) -> Result<Address, ApiError> {
    let id = conversation_id.map(str::trim).filter(|i| !i.is_empty());
    let short = id_field(short_id).map_err(|()| {
        ApiError::new(
            ErrorCode::ConversationShortIdInvalid,
            "conversation_short_id must be a number or a decimal string",
        )
    })?;
    let to_uid_invalid = |why: &str| ApiError::new(ErrorCode::ToUidInvalid, why.to_owned());
    let uid = id_field(to_uid)
        .map_err(|()| to_uid_invalid("to_uid must be a number or a decimal string"))?;
    if let Some(uid) = uid {
        if id.is_some() || short.is_some() {
            return Err(to_uid_invalid(
                "give to_uid, or conversation_id (with or without conversation_short_id), \
                 not both",
            ));
        }
        let uid = Uid::parse(&uid).map_err(|e| to_uid_invalid(&format!("to_uid: {e}")))?;
        return Ok(Address::Find(Lookup::User(uid)));
    }
    let Some(id) = id else {
        return Err(ApiError::new(
            ErrorCode::ConversationIdMissing,
            "conversation_id (or to_uid) is required",
        ));
    };
    let conversation_id = ConversationId::parse(id)
        .map_err(|e| ApiError::new(ErrorCode::ConversationIdInvalid, e.to_string()))?;
    let Some(short) = short else {
        return Ok(Address::Find(Lookup::Conversation(conversation_id)));
    };
    Ok(Address::Known(Target {
        conversation_id,
        conversation_short_id: ConversationShortId::parse(&short)
            .map_err(|e| ApiError::new(ErrorCode::ConversationShortIdInvalid, e.to_string()))?,
        inbox_type: 0,
    }))
}

/// The longest account name [`admin::check_name`] allows.
const ACCOUNT_NAME_MAX: usize = 64;

/// A named account must be a name a stored account can have (the rule of
/// [`admin::check_name`]: 1 to 64 letters, digits, '.', '_' and '-'), so a
/// name that cannot exist is refused before the store is asked, and an
/// overlong one is not echoed back.
fn check_account(account: Option<&str>) -> Result<(), ApiError> {
    let Some(name) = account else {
        return Ok(());
    };
    if name.len() > ACCOUNT_NAME_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "account must be at most {ACCOUNT_NAME_MAX} characters of letters, digits, \
                 '.', '_' and '-' (this one is {} bytes)",
                name.len()
            ),
        ));
    }
    admin::check_name("account", name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
}

/// A text the gateway can store and TikTok takes.
fn text(t: &str) -> Result<MessageText, ApiError> {
    if t.contains('\0') {
        return Err(ApiError::new(
            ErrorCode::TextInvalid,
            "the text contains a NUL character (U+0000), which the gateway does not store",
        ));
    }
    MessageText::parse(t).map_err(|e| ApiError::new(ErrorCode::TextTooLong, e.to_string()))
}

/// Reads a text part. Without a declared charset (or with UTF-8), bytes that
/// are not UTF-8 are refused: decoding them lossily would change the message
/// unseen. A part that declares another charset is decoded from it.
async fn read_text_part(
    field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, ApiError> {
    let other_charset = field
        .content_type()
        .and_then(|c| {
            c.split(';')
                .skip(1)
                .find_map(|p| p.trim().strip_prefix("charset="))
        })
        .is_some_and(|cs| !cs.trim_matches('"').eq_ignore_ascii_case("utf-8"));
    if other_charset {
        return field.text().await.map_err(multipart_error);
    }
    let bytes = field.bytes().await.map_err(multipart_error)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidForm,
            format!(
                "the form field {name:?} is not UTF-8 text (bad byte at position {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a file part, refusing it as soon as it passes the image limit.
async fn read_limited(
    mut field: axum::extract::multipart::Field<'_>,
    limit: u64,
) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::new(
                ErrorCode::ImageTooLarge,
                format!("the image is larger than the limit of {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "the form is larger than the gateway accepts: {}",
                e.body_text()
            ),
        );
    }
    ApiError::new(
        ErrorCode::InvalidForm,
        format!("the multipart form cannot be read: {}", e.body_text()),
    )
}

pub(crate) fn image_error(p: ImageProblem) -> ApiError {
    match p {
        ImageProblem::TooLarge { .. } => ApiError::new(ErrorCode::ImageTooLarge, p.to_string()),
        other => ApiError::new(ErrorCode::ImageInvalid, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn json_with_account(account: &str) -> Result<SendInput, ApiError> {
        let body = serde_json::json!({
            "conversation_id": "0:1:1:2",
            "conversation_short_id": "7",
            "text": "hi",
            "account": account,
        });
        SendInput::from_json(body.to_string().as_bytes(), Some("application/json"))
    }

    async fn form_with_account(account: &str) -> Result<SendInput, ApiError> {
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi\r\n\
             --b\r\nContent-Disposition: form-data; name=\"account\"\r\n\r\n{account}\r\n--b--\r\n"
        );
        let request = Request::builder()
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=b")
            .body(Body::from(body))
            .unwrap();
        let form = Multipart::from_request(request, &()).await.unwrap();
        SendInput::from_multipart(form, 1024).await
    }

    #[tokio::test]
    async fn an_account_name_no_stored_account_can_have_is_refused_as_invalid_request() {
        let longest = "a".repeat(ACCOUNT_NAME_MAX);
        assert!(admin::check_name("account", &longest).is_ok());
        assert_eq!(
            json_with_account(&longest).unwrap().account.as_deref(),
            Some(longest.as_str())
        );
        assert!(form_with_account(&longest).await.is_ok());

        let huge = "a".repeat(1 << 20);
        for refused in [
            json_with_account(&huge),
            form_with_account(&huge).await,
            json_with_account(&"a".repeat(ACCOUNT_NAME_MAX + 1)),
            json_with_account("x\0y"),
            json_with_account("shop a"),
        ] {
            let Err(e) = refused else { panic!("accepted") };
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{}", e.message);
            assert!(e.message.contains("64 characters"), "{}", e.message);
            // The name is not echoed back whole.
            assert!(e.message.len() < 300, "{} bytes", e.message.len());
        }
    }
}
