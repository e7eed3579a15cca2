//! The outbox worker: claims due messages, delivers them over pooled client
//! sessions (one per TikTok account), and records the outcome by the client
//! error's retry class. An ambiguous outcome is retried only with the same client
//! message id (the id a repeat is recognised by: the sandbox de-duplicates on
//! it, and TikTok's web client retries the same way); after a restart, rows left `sending`
//! come back when their lease expires.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use tiktok_dm_client::proto::access_key::hex;

use crate::now_ms;
use std::sync::Arc;
use tiktok_dm_client::image::Image;
use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::proto::ids::ClientMessageId;
use tiktok_dm_client::{Config, Credentials, Error as ClientError, RetryClass, Session, Target};
use tiktok_dm_store::{Kind, OutboxMessage, State, Store};

use tokio::sync::{OwnedSemaphorePermit, watch};

mod pool;
pub use pool::{Pool, Slot};

use crate::api::AppState;
use crate::metrics::{KindLabels, SendLabels};
use crate::waiters::Delivered;

fn error_json(e: &ClientError) -> serde_json::Value {
    json!({"code": e.code(), "message": e.to_string(), "tiktok_code": e.tiktok_code()})
}

/// Backoff before attempt `n + 1`: 500 ms doubling, capped at a minute.
fn backoff(attempts: i64) -> i64 {
    (500i64 << attempts.clamp(0, 7)).min(60_000)
}

/// Messages delivered at once; more wait in the outbox.
pub const MAX_IN_FLIGHT: usize = 512;
/// Messages claimed per store round trip.
const CLAIM_BATCH: usize = 128;

/// Starts delivering `message` on a task of its own, holding one of
/// [`AppState::in_flight`]'s permits until it ends; gives the message back when
/// [`MAX_IN_FLIGHT`] deliveries are already running.
///
/// # Errors
/// No room: the message, for the caller to release.
pub fn start<S: Store>(
    state: &AppState<S>,
    message: Box<OutboxMessage>,
) -> Result<(), Box<OutboxMessage>> {
    match Arc::clone(&state.in_flight).try_acquire_owned() {
        Ok(permit) => {
            spawn_delivery(state, *message, permit);
            Ok(())
        }
        Err(_) => Err(message),
    }
}

fn spawn_delivery<S: Store>(
    state: &AppState<S>,
    message: OutboxMessage,
    permit: OwnedSemaphorePermit,
) {
    let state = state.clone();
    tokio::spawn(async move {
        deliver(&state, message).await;
        drop(permit);
    });
}

/// Runs until `stop` turns true, then waits (up to 10 s) for the deliveries in
/// flight, its own and those the send handlers started; any still unfinished go
/// again after their lease, with the same ids.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let mut next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
    // After a failed claim, the next waits this long (doubling up to 5 s), so a
    // database that is away is not asked (and logged) five times a second.
    let mut pause = Duration::ZERO;
    loop {
        if *stop.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_sweep {
            let closed = state.pool.close_idle(state.settings.session_idle);
            if closed > 0 {
                tracing::debug!(closed, "outbox: idle sessions closed");
            }
            next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
        }
        let room = state.in_flight.available_permits();
        if room == 0 {
            // Wait for a delivery to end.
            tokio::select! {
                permit = Arc::clone(&state.in_flight).acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let lease = state.settings.lease_ms();
        let max = u32::try_from(room.min(CLAIM_BATCH)).unwrap_or(1);
        let claimed = match state.store.claim_due(now_ms(), lease, max).await {
            Ok(c) => {
                pause = Duration::ZERO;
                c
            }
            Err(e) => {
                pause = (pause * 2).clamp(CLAIM_PAUSE_FIRST, CLAIM_PAUSE_LAST);
                tracing::error!(error = %e, retry_in = ?pause, "outbox: claiming failed");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // An acceptance: the database is back.
                    () = state.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        let drained = claimed.len() < max as usize;
        for message in claimed {
            // Send handlers may have taken the room meanwhile: wait for it.
            match Arc::clone(&state.in_flight).acquire_owned().await {
                Ok(permit) => spawn_delivery(&state, message, permit),
                Err(_) => {
                    // The semaphore is never closed; if it were, the message
                    // goes again after its lease.
                    tracing::error!("outbox: no delivery permits");
                }
            }
        }
        if drained {
            // Nothing else was due: wait for news rather than ask again at once
            // (an empty claim would sit in the writer's queue ahead of the
            // outcomes of what was just claimed). A wake-up sent meanwhile is kept.
            tokio::select! {
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
    let finished =
        tokio::time::timeout(Duration::from_secs(10), state.in_flight.acquire_many(all)).await;
    if finished.is_err() {
        tracing::warn!(
            left = MAX_IN_FLIGHT.saturating_sub(state.in_flight.available_permits()),
            "outbox: stopped with deliveries in flight; they resume after their lease"
        );
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
    let kind = m.kind.as_str();
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

/// The pause after a first failed claim, and the longest.
const CLAIM_PAUSE_FIRST: Duration = Duration::from_millis(200);
const CLAIM_PAUSE_LAST: Duration = Duration::from_secs(5);

/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

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
                state.vault.open(&sealed, &format!("account:{name}")),
            )
        }
        (None, Some(sealed)) => {
            let opened = state
                .vault
                .open(sealed, &format!("request:{}", m.request_id));
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
    let config = Config::builder(Credentials::parse(secret.expose_secret())?)
        .endpoints(settings.endpoints.clone())
        .transport(settings.transport)
        .image_limit(settings.image_limit)
        .request_timeout(settings.send_timeout)
        .build()?;
    Session::connect(config).await
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
    let (permit, given) = match room.try_take(m.image_bytes) {
        Some(permit) => (permit, given),
        // No room: the bytes go while it waits.
        None => {
            let waited = tokio::time::timeout_at(deadline, room.take(m.image_bytes)).await;
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

async fn deliver<S: Store>(state: &AppState<S>, mut m: OutboxMessage) {
    let pool = &state.pool;
    // The image moves into the send rather than being copied (it may be 20 MB).
    // It is here only when the message was claimed with its acceptance.
    let mut image = m.image.take();
    let mut pool_key = None;
    let started = tokio::time::Instant::now();
    let held_since = std::sync::Mutex::new(started);
    let delivery = async {
        let account_sealed = match &m.account {
            Some(name) => match state.store.account(name).await {
                Ok(found) => found,
                // Not "the account is gone": the database did not answer.
                // The message goes back, its attempt not counted.
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: the stored account cannot be read; the message waits");
                    return Ok(Err(DATABASE_RETRY));
                }
            },
            None => None,
        };
        let (key, secret) = pool_key_and_secret(state, &m, account_sealed)?;
        pool_key = Some(key.clone());
        // Pacing: wait for this account's next slot, or give the message back
        // when the queue is longer than half a lease.
        match pool.reserve(&key, state.settings.pacing, state.settings.lease / 2) {
            // (A zero sleep would still wait for the timer's next 1 ms tick.)
            Slot::After(wait) if !wait.is_zero() => {
                // Not held while it waits for its turn (an account's queue
                // may hold dozens): it is read again when it goes.
                image = None;
                tokio::time::sleep(wait).await;
            }
            Slot::After(_) => {}
            Slot::Later(wait) => return Ok(Err(wait)),
        }
        // Images in memory for delivery stay within `image_memory` together.
        let _room = if m.kind == Kind::Image {
            let deadline = started + state.settings.lease / 2;
            let Some((room, bytes)) = image_in_room(state, &m, image.take(), deadline).await else {
                return Ok(Err(DATABASE_RETRY));
            };
            image = Some(bytes);
            Some(room)
        } else {
            None
        };
        let session = pool
            .session(&key, || connect(&state.settings, &secret))
            .await?;
        let target = Target::parse(&m.conversation_id, &m.conversation_short_id.to_string())?;
        let id = ClientMessageId::parse(&m.client_message_id)
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let sent = match m.kind {
            Kind::Text => {
                let text = MessageText::parse(m.text.as_deref().unwrap_or_default())
                    .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
                session.send_text_with_id(&target, &text, &id).await
            }
            Kind::Image => {
                let image = Image::from_bytes(
                    image.take().unwrap_or_default(),
                    state.settings.image_limit,
                )?;
                session.send_image_with_id(&target, image, &id).await
            }
        };
        sent.map(Ok)
    };
    let result = tokio::select! {
        result = delivery => result,
        never = keep_leased(state, m.id, &held_since) => match never {},
    };
    let held_since = held_since
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = now_ms();
    let recorded = match result {
        Ok(Err(wait)) => {
            let at = now + i64::try_from(wait.as_millis()).unwrap_or(60_000);
            let released =
                while_unavailable(state, held_since, || state.store.release(m.id, at)).await;
            if let Err(e) = released {
                tracing::error!(error = %e, "outbox: giving a paced message back failed");
            }
            return;
        }
        Ok(Ok(sent)) => {
            tracing::debug!(
                request = %m.request_id,
                client_message_id = %m.client_message_id,
                attempt = m.attempts,
                "outbox: delivered"
            );
            record(state, &m, started, "sent", None);
            let transport = match sent.transport {
                tiktok_dm_client::Transport::Ws => "ws",
                tiktok_dm_client::Transport::Http => "http",
            };
            let server_message_id = sent.server_message_id.to_string();
            // The waiting handler answers now; reads see the delivery until the
            // commit ends (crash safety is the same either way: a row whose
            // outcome is not committed goes again with the same client id).
            let recording = state.waiters.delivered(
                &m.request_id,
                Delivered {
                    position: m.position,
                    server_message_id: server_message_id.clone(),
                    transport,
                },
            );
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
        Err(e) => {
            let next = Next::after(&e, m.attempts, state.settings.max_attempts, now);
            record(state, &m, started, next.outcome(), Some(&e));
            tracing::info!(request = %m.request_id, code = e.code(), attempts = m.attempts, "outbox: delivery failed");
            if matches!(
                e,
                ClientError::InvalidSession(_) | ClientError::HandshakeRefused { .. }
            ) {
                if let Some(key) = &pool_key {
                    pool.forget(key);
                }
            }
            let error = error_json(&e);
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
    };
    if m.kind == Kind::Image {
        // Its caption, if any, is due now.
        state.wake.notify_one();
    }
    if let Err(e) = recorded {
        // The lease runs out and the message is claimed again with the same id.
        tracing::error!(error = %e, "outbox: recording an outcome failed");
    }
}
