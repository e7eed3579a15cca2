//! One delivery: find the message's session (its account's or the
//! request's own), wait for the account's pacing slot and for room for its
//! image, send it with the client message id fixed at acceptance, and record
//! the outcome ([`Attempt`]): sent, given back untried, or failed (retried,
//! failed for good, or of unknown outcome, by the error's retry class). The
//! lease is renewed while it runs.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use sha2::{Digest, Sha256};
use tiktok_dm_client::image::Image;
use tiktok_dm_client::{Error as ClientError, RetryClass, Sent, Session, Transport};
use tiktok_dm_proto::access_key::hex;
use tiktok_dm_store::{Content, DeliveryError, Kind, OutboxMessage, State, Store};

use super::Slot;
use crate::metrics::{KindLabels, SendLabels};
use crate::now_ms;
use crate::secrets::SealContext;
use crate::state::AppState;
use crate::waiters::Delivered;

/// How one attempt at a delivery ended.
enum Attempt {
    /// TikTok took it.
    Sent(Sent),
    /// Not tried (pacing said not yet, no room for its image, or the database
    /// could not be read): back to the outbox, due after this long, the
    /// attempt not counted.
    GiveBack(Duration),
    /// Tried, and failed.
    Failed(ClientError),
}

/// Backoff before attempt `n + 1`: 500 ms doubling, capped at a minute.
fn backoff(attempts: i64) -> i64 {
    (500i64 << attempts.clamp(0, 7)).min(60_000)
}

/// The recorded form of a client error.
fn delivery_error(e: &ClientError) -> DeliveryError {
    DeliveryError::Send {
        code: e.failure_code(),
        message: e.to_string(),
        tiktok_code: e.tiktok_code(),
    }
}

/// What happens to a message after a failed attempt, by the error's retry
/// class and whether this was the last attempt allowed.
enum Next {
    /// It will not be delivered (its quota goes back).
    Failed,
    /// It may have been delivered; no more attempts.
    Unknown,
    /// Again at this time (Unix ms), with the same client message id.
    Retry(i64),
}

impl Next {
    fn after(e: &ClientError, attempts: i64, max_attempts: i64, now: i64) -> Self {
        let last = attempts >= max_attempts;
        match e.retry_class() {
            RetryClass::Permanent => Self::Failed,
            RetryClass::Ambiguous if last => Self::Unknown,
            RetryClass::Retryable | RetryClass::RetryAfter(_) if last => Self::Failed,
            RetryClass::RetryAfter(d) => {
                Self::Retry(now + i64::try_from(d.as_millis()).unwrap_or(60_000))
            }
            // Ambiguous: the same client message id goes again, so a repeat can be recognised.
            RetryClass::Retryable | RetryClass::Ambiguous => Self::Retry(now + backoff(attempts)),
        }
    }

    /// The metrics label.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Retry(_) => "retry",
        }
    }
}

/// Counts and times one delivery attempt.
fn record<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    started: tokio::time::Instant,
    outcome: &'static str,
    error: Option<&ClientError>,
) {
    let kind = m.kind().as_str();
    state
        .metrics
        .delivery_seconds
        .get_or_create(&KindLabels { kind })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .sends
        .get_or_create(&SendLabels {
            outcome,
            kind,
            code: error.map_or("ok", ClientError::code).to_owned(),
            tiktok_code: error
                .and_then(ClientError::tiktok_code)
                .map(|c| c.to_string())
                .unwrap_or_default(),
        })
        .inc();
}

/// Which pooled session a message goes out on, and its secret. A stored
/// account's key includes a digest of its sealed session, so replacing the
/// session starts a new client session (the old one idles out).
fn pool_key_and_secret<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    account_sealed: Option<Vec<u8>>,
) -> Result<(String, secrecy::SecretString), ClientError> {
    let (key, opened) = match (&m.account, &m.session_sealed) {
        (Some(name), _) => {
            let sealed = account_sealed.ok_or_else(|| {
                ClientError::InvalidSession(format!("the stored account {name:?} is gone"))
            })?;
            let digest = hex(&Sha256::digest(&sealed)[..8]);
            (
                format!("account:{name}:{digest}"),
                state.vault.open(&sealed, SealContext::Account(name)),
            )
        }
        (None, Some(sealed)) => {
            let opened = state
                .vault
                .open(sealed, SealContext::Request(&m.request_id));
            let fingerprint = opened
                .as_ref()
                .map(|s| hex(&Sha256::digest(s.expose_secret().as_bytes())))
                .unwrap_or_default();
            (format!("session:{fingerprint}"), opened)
        }
        (None, None) => {
            return Err(ClientError::InvalidSession(
                "the request's session was already wiped".into(),
            ));
        }
    };
    Ok((
        key,
        opened.map_err(|e| ClientError::InvalidSession(e.to_string()))?,
    ))
}

async fn connect(
    settings: &crate::Settings,
    secret: &secrecy::SecretString,
) -> Result<Session, ClientError> {
    Session::connect(settings.client_config(secret, settings.transport)?).await
}

/// Room for `m`'s image in [`AppState::image_room`], and its bytes: those given (claimed
/// with the acceptance) when there is room at once, else read from the store
/// once there is. `None` (the message goes back to the outbox, rather than
/// hold a delivery slot and a lease while it waits) when there is no room by
/// `deadline`, or when the store cannot be read. A stored image that
/// is gone is read as empty, which the client refuses as an invalid image.
async fn image_in_room<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    given: Option<Vec<u8>>,
    deadline: tokio::time::Instant,
) -> Option<(tokio::sync::OwnedSemaphorePermit, Vec<u8>)> {
    let room = &state.image_room;
    let size = m.image_bytes();
    let (permit, given) = match room.try_take(size) {
        Some(permit) => (permit, given),
        // No room: the bytes go while it waits.
        None => {
            let waited = tokio::time::timeout_at(deadline, room.take(size)).await;
            (waited.ok()??, None)
        }
    };
    let bytes = match given {
        Some(bytes) => bytes,
        None => match state.store.image(m.id).await {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "outbox: the image cannot be read; the message waits");
                return None;
            }
        },
    };
    Some((permit, bytes))
}

/// How long a message waits when the database could not be read for it.
const DATABASE_RETRY: Duration = Duration::from_secs(2);

/// Runs `write` (an outcome's record) again while the database is
/// unavailable, backing off from 100 ms to 5 s, until half a lease has passed
/// since the lease was last taken (`held_since`). A delivery whose outcome is
/// not recorded goes again once its lease runs out (with the same client
/// message id); a database that is back within seconds should not cost a
/// second transmission.
async fn while_unavailable<S, F, Fut>(
    state: &AppState<S>,
    held_since: tokio::time::Instant,
    mut write: F,
) -> tiktok_dm_store::Result<()>
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = tiktok_dm_store::Result<()>>,
{
    let deadline = held_since + state.settings.lease / 2;
    let mut wait = Duration::from_millis(100);
    loop {
        match write().await {
            Err(tiktok_dm_store::Error::Unavailable(why))
                if tokio::time::Instant::now() + wait < deadline =>
            {
                tracing::warn!(error = %why, retry_in = ?wait, "outbox: the database is unavailable; recording the outcome again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Keeps renewing the lease of message `id` every third of a lease, for as
/// long as its delivery runs (it never ends by itself), and notes in
/// `held_since` when the lease was last taken. A delivery slower than a lease
/// (a slow upload, a user's short `lease_secs`) is then not claimed and sent
/// a second time while it is still on its way.
async fn keep_leased<S: Store>(
    state: &AppState<S>,
    id: i64,
    held_since: &std::sync::Mutex<tokio::time::Instant>,
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(state.settings.lease / 3).await;
        let taken = tokio::time::Instant::now();
        match state
            .store
            .renew(id, now_ms() + state.settings.lease_ms())
            .await
        {
            Ok(true) => {
                if let Ok(mut since) = held_since.lock() {
                    *since = taken;
                }
            }
            Ok(false) => {
                // Another process ended or took it: nothing left to hold.
                tracing::warn!(id, "outbox: a message in delivery is no longer leased here");
                return std::future::pending().await;
            }
            Err(e) => tracing::warn!(error = %e, id, "outbox: a lease could not be renewed"),
        }
    }
}

/// Delivers `m` and records the outcome.
pub(super) async fn deliver<S: Store>(state: &AppState<S>, mut m: OutboxMessage) {
    // The image moves into the send rather than being copied (it may be 20 MB).
    // It is here only when the message was claimed with its acceptance.
    let given = match &mut m.content {
        Content::Image(image) => image.bytes.take(),
        Content::Text(_) => None,
    };
    let mut pool_key = None;
    let started = tokio::time::Instant::now();
    let held_since = std::sync::Mutex::new(started);
    let attempt = tokio::select! {
        attempt = attempt(state, &m, given, &mut pool_key, started) => attempt,
        never = keep_leased(state, m.id, &held_since) => match never {},
    };
    let held_since = held_since
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recorded = match attempt {
        Attempt::GiveBack(wait) => return give_back(state, &m, wait, held_since).await,
        Attempt::Sent(sent) => record_sent(state, &m, sent, started, held_since).await,
        Attempt::Failed(e) => {
            if matches!(
                e,
                ClientError::InvalidSession(_) | ClientError::HandshakeRefused { .. }
            ) {
                if let Some(key) = &pool_key {
                    state.pool.forget(key);
                }
            }
            record_failure(state, &m, &e, started, held_since).await
        }
    };
    if m.kind() == Kind::Image {
        // Its caption, if any, is due now.
        state.wake.notify_one();
    }
    if let Err(e) = recorded {
        // The lease runs out and the message is claimed again with the same id.
        tracing::error!(error = %e, "outbox: recording an outcome failed");
    }
}

/// One attempt: the session, the pacing slot, room for the image, the send.
/// `pool_key` is set once the session's key is known.
async fn attempt<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    mut given: Option<Vec<u8>>,
    pool_key: &mut Option<String>,
    started: tokio::time::Instant,
) -> Attempt {
    let account_sealed = match &m.account {
        Some(name) => match state.store.account(name).await {
            Ok(found) => found,
            // Not "the account is gone": the database did not answer.
            Err(e) => {
                tracing::warn!(error = %e, "outbox: the stored account cannot be read; the message waits");
                return Attempt::GiveBack(DATABASE_RETRY);
            }
        },
        None => None,
    };
    let (key, secret) = match pool_key_and_secret(state, m, account_sealed) {
        Ok(found) => found,
        Err(e) => return Attempt::Failed(e),
    };
    *pool_key = Some(key.clone());
    // Pacing: wait for this account's next slot, or give the message back
    // when the queue is longer than half a lease.
    match state
        .pool
        .reserve(&key, state.settings.pacing, state.settings.lease / 2)
    {
        // (A zero sleep would still wait for the timer's next 1 ms tick.)
        Slot::After(wait) if !wait.is_zero() => {
            // Not held while it waits for its turn (an account's queue may
            // hold dozens): it is read again when it goes.
            given = None;
            tokio::time::sleep(wait).await;
        }
        Slot::After(_) => {}
        Slot::Later(wait) => return Attempt::GiveBack(wait),
    }
    // Images in memory for delivery stay within `image_memory` together.
    let (image, _room) = match &m.content {
        Content::Image(_) => {
            let deadline = started + state.settings.lease / 2;
            match image_in_room(state, m, given, deadline).await {
                Some((room, bytes)) => (Some(bytes), Some(room)),
                None => return Attempt::GiveBack(DATABASE_RETRY),
            }
        }
        Content::Text(_) => (None, None),
    };
    match send(state, m, &key, &secret, image).await {
        Ok(sent) => Attempt::Sent(sent),
        Err(e) => Attempt::Failed(e),
    }
}

/// Sends `m` on the pooled session `key` (connected with `secret` if need be).
async fn send<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    key: &str,
    secret: &secrecy::SecretString,
    image: Option<Vec<u8>>,
) -> Result<Sent, ClientError> {
    let session = state
        .pool
        .session(key, || connect(&state.settings, secret))
        .await?;
    let id = &m.client_message_id;
    match &m.content {
        Content::Text(text) => session.send_text_with_id(&m.target, text, id).await,
        Content::Image(_) => {
            let image = Image::from_bytes(image.unwrap_or_default(), state.settings.image_limit)?;
            session.send_image_with_id(&m.target, image, id).await
        }
    }
}

/// Gives `m` back to the outbox untried, due in `wait`.
async fn give_back<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    wait: Duration,
    held_since: tokio::time::Instant,
) {
    let at = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(60_000);
    let released = while_unavailable(state, held_since, || state.store.release(m.id, at)).await;
    if let Err(e) = released {
        tracing::error!(error = %e, "outbox: giving a paced message back failed");
    }
}

/// Records a delivery; the waiting send handler hears of it at once.
async fn record_sent<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    sent: Sent,
    started: tokio::time::Instant,
    held_since: tokio::time::Instant,
) -> tiktok_dm_store::Result<()> {
    tracing::debug!(
        request = %m.request_id,
        client_message_id = %m.client_message_id,
        attempt = m.attempts,
        "outbox: delivered"
    );
    record(state, m, started, "sent", None);
    let transport = match sent.transport {
        Transport::Ws => "ws",
        Transport::Http => "http",
    };
    let server_message_id = sent.server_message_id.to_string();
    // The waiting handler answers now; reads see the delivery until the
    // commit ends (crash safety is the same either way: a row whose outcome
    // is not committed goes again with the same client id).
    let recording = state.waiters.delivered(
        &m.request_id,
        Delivered {
            position: m.position,
            server_message_id: server_message_id.clone(),
            transport,
        },
    );
    let now = now_ms();
    let recorded = while_unavailable(state, held_since, || {
        state
            .store
            .mark_sent(m.id, &server_message_id, transport, now)
    })
    .await;
    drop(recording);
    if recorded.is_err() {
        state.waiters.wake(&m.request_id);
    }
    recorded
}

/// Records a failed attempt: another attempt later, or the end.
async fn record_failure<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    e: &ClientError,
    started: tokio::time::Instant,
    held_since: tokio::time::Instant,
) -> tiktok_dm_store::Result<()> {
    let now = now_ms();
    let next = Next::after(e, m.attempts, state.settings.max_attempts, now);
    record(state, m, started, next.outcome(), Some(e));
    tracing::info!(request = %m.request_id, code = e.code(), attempts = m.attempts, "outbox: delivery failed");
    let error = delivery_error(e);
    let recorded = while_unavailable(state, held_since, || async {
        match next {
            Next::Failed => state.store.finish(m.id, State::Failed, &error, now).await,
            Next::Unknown => state.store.finish(m.id, State::Unknown, &error, now).await,
            Next::Retry(at) => state.store.reschedule(m.id, at, &error, now).await,
        }
    })
    .await;
    state.waiters.wake(&m.request_id);
    recorded
}
