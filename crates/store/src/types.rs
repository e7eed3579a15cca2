//! Values going into and out of the store: the domain's own types (from
//! `tiktok_dm_proto::message` and `ids`), turned into columns and back in
//! [`crate::columns`] alone.

use serde::Serialize;

pub use tiktok_dm_proto::content::MessageText;
pub use tiktok_dm_proto::ids::ClientMessageId;
pub use tiktok_dm_proto::message::{Content, FailureCode, Kind, Target};

/// A stored API key (the key itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The key's visible prefix, to recognise it.
    pub prefix: String,
    /// Messages per UTC day.
    pub daily_limit: Option<u32>,
    /// Messages per UTC month.
    pub monthly_limit: Option<u32>,
    /// The stored account this key sends as when a request names none (the
    /// first of `accounts`).
    pub account: Option<String>,
    /// The stored accounts this key may send as.
    pub accounts: Vec<String>,
    /// Whether it may send as any stored account.
    pub any_account: bool,
    /// Creation time (ms).
    pub created_at: i64,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// Whether this key may send as the stored account `name`.
    pub fn may_send_as(&self, name: &str) -> bool {
        self.any_account || self.accounts.iter().any(|a| a == name)
    }
}

/// A key to create.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    /// Unique name.
    pub name: String,
    /// Visible prefix.
    pub prefix: String,
    /// SHA-256 of the key.
    pub key_hash: [u8; 32],
    /// Messages per UTC day.
    pub daily_limit: Option<u32>,
    /// Messages per UTC month.
    pub monthly_limit: Option<u32>,
    /// The stored accounts it may send as; the first is the one it sends as
    /// when a request names none.
    pub accounts: Vec<String>,
    /// Whether it may send as any stored account.
    pub any_account: bool,
}

/// A stored account, without its session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    /// Name.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
    /// Whether the gateway listens for its DMs (default true).
    pub listen: bool,
    /// Whether its session still works.
    pub status: AccountStatus,
    /// When `status` last changed (ms); its creation until then.
    pub status_changed_at: i64,
}

/// Whether a stored account's session still works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// It does (as far as the gateway knows); every account starts so, and
    /// storing a fresh session makes it so again.
    Active,
    /// TikTok refused it: it needs a new session.
    Expired,
}

impl AccountStatus {
    /// Its stored (and JSON) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

/// How far catch-up has read one conversation of a stored account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConversationCursor {
    /// The conversation.
    pub conversation_id: String,
    /// The highest server message id read.
    pub last_server_message_id: i64,
    /// The highest index in the conversation read.
    pub last_index: i64,
}

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for delivery (or another attempt).
    Accepted,
    /// Claimed by a worker.
    Sending,
    /// Delivered.
    Sent,
    /// Will not be delivered.
    Failed,
    /// May or may not have been delivered.
    Unknown,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        Ok(match s {
            "accepted" => Self::Accepted,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "unknown" => Self::Unknown,
            other => return Err(crate::Error::Corrupt(format!("message state {other:?}"))),
        })
    }

    /// Whether the message will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::Unknown)
    }
}

/// One message of a request.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Fixed now, reused by every attempt.
    pub client_message_id: ClientMessageId,
    /// The text, or the image's bytes.
    pub content: Content<Vec<u8>>,
}

/// A stored image as a claim reads it: its size, and its bytes only when
/// they were in memory already (a message claimed with its acceptance). A
/// claim does not read images: up to a batch of 20 MB images would be held
/// while they wait for their turn; [`crate::Store::image`] reads it when it
/// is about to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// Its size in bytes.
    pub size: u64,
    /// Its bytes, when they came with the claim.
    pub bytes: Option<Vec<u8>>,
}

/// A request to accept.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// Public id.
    pub id: String,
    /// The key it came with.
    pub api_key_id: i64,
    /// Optional idempotency key (unique per API key).
    pub idempotency_key: Option<String>,
    /// Hash of the request's content, to tell a replay from a conflicting reuse.
    pub request_hash: String,
    /// Stored account to send as, or `None` with a per-request session.
    pub account: Option<String>,
    /// Per-request session, sealed; wiped when every message is final.
    pub session_sealed: Option<Vec<u8>>,
    /// Its lane ([`crate::account_lane`] or [`crate::session_lane`]): only
    /// the gateway holding that lane's lease claims its messages.
    pub lane: String,
    /// Where it goes (its inbox type is not stored: it reads back as 0).
    pub target: Target,
    /// In delivery order.
    pub messages: Vec<NewMessage>,
    /// Claim the first message for the caller in the same transaction, leased
    /// for this many ms (the gateway hands it straight to its worker, saving a
    /// claim round trip); `None` leaves it to [`Store::claim_due`](crate::Store::claim_due).
    pub claim_first_ms: Option<i64>,
}

/// One quota window to check and reserve in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaWindow {
    /// "daily" or "monthly".
    pub name: &'static str,
    /// Messages allowed in the window.
    pub limit: u64,
    /// Window start (ms).
    pub start: i64,
    /// When the window resets (ms).
    pub resets_at: i64,
}

/// The outcome of [`Store::enqueue`](crate::Store::enqueue).
#[derive(Clone, Debug, PartialEq)]
pub enum Enqueued {
    /// Written; deliver it.
    Accepted {
        /// The request id.
        request_id: String,
        /// The first message, already claimed, when `claim_first_ms` asked for it.
        claimed: Option<Box<OutboxMessage>>,
        /// The request and the key's usage as of this acceptance (this request
        /// counted): what [`Store::snapshot`](crate::Store::snapshot) would read
        /// right after it, so an answer needs no read.
        snapshot: Box<Snapshot>,
    },
    /// The same idempotency key with the same content: the first request's id.
    Replay {
        /// The first request's id.
        request_id: String,
    },
    /// The idempotency key was used for a different request.
    IdempotencyConflict,
    /// The request's API key is revoked (or gone); nothing was written. Checked
    /// in the accepting transaction, so nothing is accepted for a key after its
    /// revocation committed, even when the caller read the key just before.
    KeyRevoked,
    /// A window would be exceeded; nothing was written.
    QuotaExceeded {
        /// The window.
        window: &'static str,
        /// Its limit.
        limit: u64,
        /// Messages already counted.
        used: u64,
        /// When it resets (ms).
        resets_at: i64,
    },
}

/// A claimed message with what the worker needs to deliver it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id.
    pub id: i64,
    /// Its request.
    pub request_id: String,
    /// Order within the request.
    pub position: i64,
    /// Fixed at acceptance.
    pub client_message_id: ClientMessageId,
    /// The text, or the image.
    pub content: Content<StoredImage>,
    /// Attempts so far (this one included).
    pub attempts: i64,
    /// This claim's fencing token: every write of its outcome names it, and
    /// changes nothing once the row was claimed again.
    pub token: i64,
    /// When its request was accepted (ms): delivery is tried until a
    /// deadline counted from here.
    pub accepted_at: i64,
    /// Earlier attempts that reached TikTok (see
    /// [`crate::Store::reschedule`]); `attempts` counts every one.
    pub transmissions: i64,
    /// Whether a later message of its request waits for this one (a
    /// caption for its image): its outcome makes that one due.
    pub followed: bool,
    /// Where it goes.
    pub target: Target,
    /// Stored account, or `None` for a per-request session.
    pub account: Option<String>,
    /// The per-request sealed session.
    pub session_sealed: Option<Vec<u8>>,
    /// The key it came with.
    pub api_key_id: i64,
    /// Its lane.
    pub lane: String,
    /// Its pacing slot (ms): it goes no earlier (at or before the claim's
    /// time when unpaced).
    pub send_at: i64,
}

/// One message's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageStatus {
    /// Image or text.
    pub kind: Kind,
    /// Fixed at acceptance.
    pub client_message_id: ClientMessageId,
    /// Current state.
    pub state: State,
    /// TikTok's id, once sent.
    pub server_message_id: Option<String>,
    /// ws or http, once sent.
    pub transport: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// The last error.
    pub error: Option<DeliveryError>,
}

/// Why a message was not delivered (or not yet), as recorded. Stored as JSON
/// whose `code` is the variant's code (see `columns.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The send failed as the client reported it.
    Send {
        /// The client's code.
        code: FailureCode,
        /// Its message (never a secret).
        message: String,
        /// TikTok's own code, when there was one.
        tiktok_code: Option<i64>,
    },
    /// An earlier message of the request was not delivered, so this one was
    /// not attempted.
    NotAttempted,
    /// The gateway could not read back what it stored (a corrupt row, or an
    /// error recorded by a version that knew other codes): its own failure,
    /// not TikTok's. TikTok was not asked.
    Corrupt {
        /// What could not be read.
        message: String,
    },
}

impl DeliveryError {
    /// The code it is stored and answered with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Send { code, .. } => code.as_str(),
            Self::NotAttempted => "not_attempted",
            Self::Corrupt { .. } => "stored_message_corrupt",
        }
    }

    /// Its message.
    pub fn message(&self) -> &str {
        match self {
            Self::Send { message, .. } | Self::Corrupt { message } => message,
            Self::NotAttempted => "an earlier message of this request was not delivered",
        }
    }

    /// TikTok's code, when the client reported one.
    pub fn tiktok_code(&self) -> Option<i64> {
        match self {
            Self::Send { tiktok_code, .. } => *tiktok_code,
            _ => None,
        }
    }
}

impl Serialize for DeliveryError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::columns::delivery_error_json(self).serialize(s)
    }
}

/// A claimed row that does not read back as a message: the worker ends it
/// as [`DeliveryError::Corrupt`] instead of sending it, and the rest of the
/// claim goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptMessage {
    /// Row id.
    pub id: i64,
    /// The claim's fencing token.
    pub token: i64,
    /// Its request.
    pub request_id: String,
    /// What does not read back.
    pub why: String,
}

/// A claimed outbox row and the fencing token of that claim: what every
/// write of a delivery's outcome names. A write whose token is not the row's
/// latest (the row was claimed again after this lease ran out) changes
/// nothing and answers `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Row id.
    pub id: i64,
    /// The claim's token.
    pub token: i64,
}

impl CorruptMessage {
    /// Its claim.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            token: self.token,
        }
    }
}

/// One row of a claim.
pub type Claimed = std::result::Result<OutboxMessage, CorruptMessage>;

/// A request's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestStatus {
    /// Request id.
    pub id: String,
    /// Acceptance time (ms).
    pub created_at: i64,
    /// Whether a per-request session is still stored (only while undelivered).
    pub holds_session: bool,
    /// The image bytes it carries.
    pub image_bytes: u64,
    /// Its messages in order.
    pub messages: Vec<MessageStatus>,
}

/// A key's running totals; failed messages (whose quota was given back) are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// Messages this UTC day.
    pub today: u64,
    /// Messages this UTC month.
    pub month: u64,
    /// Messages ever.
    pub total: u64,
    /// Image bytes ever.
    pub image_bytes: u64,
}

/// What one retention pass ([`Store::delete_expired`](crate::Store::delete_expired)) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Requests whose every message had ended before the cutoff.
    pub requests: u64,
    /// Their messages (outbox rows).
    pub messages: u64,
    /// Day and month usage counters of periods that had ended before the cutoff.
    pub counters: u64,
}

/// What [`Store::snapshot`](crate::Store::snapshot) reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The request, if asked for and found.
    pub status: Option<RequestStatus>,
    /// The key's running totals.
    pub totals: UsageTotals,
    /// Messages counted in each window asked for, in the same order.
    pub used: Vec<u64>,
}

/// The columns an API key is read from, in the order of [`ApiKeyRow`]; each
/// backend adds its accounts, joined by U+001F (which no name holds) in
/// their order.
pub(crate) const API_KEY_COLUMNS: &str =
    "id, name, prefix, daily_limit, monthly_limit, account, created_at, revoked_at, any_account";

/// An API key's row as either driver reads it ([`API_KEY_COLUMNS`], then the
/// accounts).
pub(crate) type ApiKeyRow = (
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    bool,
    Option<String>,
);

/// What separates the accounts of a key in [`ApiKeyRow`].
pub(crate) const ACCOUNT_SEPARATOR: char = '\u{1f}';

/// A stored limit; one out of range (never written) reads as none.
fn limit(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

impl ApiKey {
    /// The key a stored row holds.
    pub(crate) fn stored(row: ApiKeyRow) -> Self {
        let (id, name, prefix, daily, monthly, account, created_at, revoked_at, any, joined) = row;
        let accounts = joined
            .map(|j| j.split(ACCOUNT_SEPARATOR).map(str::to_owned).collect())
            .unwrap_or_default();
        Self {
            id,
            name,
            prefix,
            daily_limit: limit(daily),
            monthly_limit: limit(monthly),
            account,
            accounts,
            any_account: any,
            created_at,
            revoked_at,
        }
    }

    /// The key `new` became when stored with `id` at `now`.
    pub(crate) fn created(id: i64, new: NewApiKey, now: i64) -> Self {
        Self {
            id,
            name: new.name,
            prefix: new.prefix,
            daily_limit: new.daily_limit,
            monthly_limit: new.monthly_limit,
            account: new.accounts.first().cloned(),
            accounts: new.accounts,
            any_account: new.any_account,
            created_at: now,
            revoked_at: None,
        }
    }
}

impl Enqueued {
    /// An acceptance as the transaction just wrote it: every message
    /// `accepted`, the first `sending` when it was `claimed` with the enqueue,
    /// and the key's usage after it.
    pub(crate) fn accepted(
        request: NewRequest,
        now: i64,
        image_bytes: i64,
        claimed: Option<Box<OutboxMessage>>,
        totals: UsageTotals,
        used: Vec<u64>,
    ) -> Self {
        let claimed_first = claimed.is_some();
        let status = RequestStatus {
            id: request.id.clone(),
            created_at: now,
            holds_session: request.session_sealed.is_some(),
            image_bytes: u64::try_from(image_bytes).unwrap_or(0),
            messages: request
                .messages
                .into_iter()
                .enumerate()
                .map(|(position, m)| {
                    let sending = claimed_first && position == 0;
                    MessageStatus {
                        kind: m.content.kind(),
                        client_message_id: m.client_message_id,
                        state: if sending {
                            State::Sending
                        } else {
                            State::Accepted
                        },
                        server_message_id: None,
                        transport: None,
                        attempts: i64::from(sending),
                        error: None,
                    }
                })
                .collect(),
        };
        Self::Accepted {
            request_id: request.id,
            claimed,
            snapshot: Box::new(Snapshot {
                status: Some(status),
                totals,
                used,
            }),
        }
    }
}

impl OutboxMessage {
    /// The first message of `request`, claimed with its acceptance as row `id`;
    /// its image moves out of the request (it may be 20 MB).
    pub(crate) fn claimed_first(id: i64, request: &mut NewRequest, now: i64) -> Option<Self> {
        let first = request.messages.first_mut()?;
        let content = match &mut first.content {
            Content::Image(bytes) => Content::Image(StoredImage {
                size: bytes.len() as u64,
                bytes: Some(std::mem::take(bytes)),
            }),
            Content::Text(text) => Content::Text(text.clone()),
        };
        Some(Self {
            id,
            request_id: request.id.clone(),
            position: 0,
            client_message_id: first.client_message_id.clone(),
            content,
            attempts: 1,
            token: 1,
            accepted_at: now,
            transmissions: 0,
            followed: request.messages.len() > 1,
            target: request.target.clone(),
            account: request.account.clone(),
            session_sealed: request.session_sealed.clone(),
            api_key_id: request.api_key_id,
            lane: request.lane.clone(),
            send_at: now,
        })
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.content.kind()
    }

    /// Its claim, for the writes of its outcome.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            token: self.token,
        }
    }

    /// Its image's size in bytes (0 for a text).
    pub fn image_bytes(&self) -> u64 {
        self.content.image().map_or(0, |i| i.size)
    }
}

/// Whether `s` can be stored as text by every backend: PostgreSQL's `text`
/// cannot hold U+0000. Writes refuse such values ([`Error::Invalid`](crate::Error::Invalid)),
/// and a lookup by one finds nothing, on both backends.
pub(crate) fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// [`Error::Invalid`](crate::Error::Invalid) naming `what` unless `s` is [`storable`].
pub(crate) fn check(what: &'static str, s: &str) -> crate::Result<()> {
    if storable(s) {
        Ok(())
    } else {
        Err(crate::Error::Invalid(what))
    }
}

impl NewApiKey {
    /// Refuses text no backend may store (see [`storable`]).
    pub(crate) fn check(&self) -> crate::Result<()> {
        check("an API key name", &self.name)?;
        check("an API key prefix", &self.prefix)?;
        self.accounts
            .iter()
            .try_for_each(|a| check("an account name", a))
    }
}

impl NewRequest {
    /// Refuses text no backend may store (see [`storable`]).
    pub(crate) fn check(&self) -> crate::Result<()> {
        check("a request id", &self.id)?;
        // Ended requests are notified by id, 100 to a notification of at
        // most 8,000 bytes, comma-separated (`postgres/notices.rs`).
        if self.id.len() > 64 || self.id.contains(',') {
            return Err(crate::Error::Invalid(
                "a request id (64 bytes at most, no comma)",
            ));
        }
        check("a request hash", &self.request_hash)?;
        if let Some(k) = &self.idempotency_key {
            check("an idempotency key", k)?;
        }
        if let Some(a) = &self.account {
            check("an account name", a)?;
        }
        for m in &self.messages {
            if let Content::Text(t) = &m.content {
                check("a message text", t.as_str())?;
            }
        }
        Ok(())
    }
}
