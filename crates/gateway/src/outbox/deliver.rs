//! One delivery: find the message's session (its account's or the
//! request's own), wait for the account's pacing slot and for room for its
//! image, send it with the client message id fixed at acceptance, and record
//! the outcome ([`Attempt`]): sent, given back untried, or failed (retried,
//! failed for good, or of unknown outcome, by the error's retry class). The
//! lease is renewed while it runs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tiktok_dm_client::backoff;
use tiktok_dm_client::image::Image;
use tiktok_dm_client::{Error as ClientError, RetryClass, Sent, Session, Transport};
use tiktok_dm_proto::status::{StatusCode, business_code_meaning};
use tiktok_dm_store::{Content, DeliveryError, OutboxMessage, Recorded, State, Store};

use super::lease::{Lease, while_unavailable};
use crate::metrics::{KindLabels, SendLabels};
use crate::secrets::SealContext;
use crate::state::AppState;
use crate::waiters::Delivered;
use crate::{millis, now_ms};

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
    /// Not sent: the lease was lost before transmitting (the message is
    /// another worker's now). Nothing is recorded from here.
    LeaseLost,
}

/// The recorded form of a client error.
fn delivery_error(e: &ClientError) -> DeliveryError {
    DeliveryError::Send {
        code: e.failure_code(),
        message: e.to_string(),
        tiktok_code: e.tiktok_code(),
    }
}

/// What happens to a message after a failed attempt.
#[derive(Clone, Copy)]
enum Next {
    /// It will not be delivered (its quota goes back).
    Failed,
    /// It may have been delivered; no more attempts.
    Unknown,
    /// Again at this time (Unix ms), with the same client message id.
    Retry(i64),
}

impl Next {
    /// By the error's retry class: a permanent failure ends the message; a
    /// retryable or ambiguous one goes again after a backoff with full
    /// jitter, until `max_attempts` attempts reached TikTok or the next one
    /// would fall past the delivery deadline. Attempts that did not reach
    /// TikTok (an outage) count only against the deadline.
    fn after(e: &ClientError, m: &OutboxMessage, settings: &crate::Settings, now: i64) -> Self {
        let reached = e.reached_tiktok();
        let transmissions = m.transmissions + i64::from(reached);
        let deadline = m.accepted_at + millis(settings.delivery_deadline);
        let wait = match e.retry_class() {
            RetryClass::RetryAfter(d) => millis(d),
            _ => millis(backoff::full_jitter(
                u32::try_from(m.attempts).unwrap_or(u32::MAX),
                Duration::from_secs(1),
                settings.retry_max_delay,
                rand::random::<f64>(),
            )),
        };
        let last = transmissions >= settings.max_attempts || now + wait > deadline;
        match e.retry_class() {
            RetryClass::Permanent => Self::Failed,
            RetryClass::Ambiguous if last => Self::Unknown,
            RetryClass::Retryable | RetryClass::RetryAfter(_) if last => Self::Failed,
            // Ambiguous: the same client message id goes again, so a repeat can be recognised.
            RetryClass::Retryable | RetryClass::RetryAfter(_) | RetryClass::Ambiguous => {
                Self::Retry(now + wait)
            }
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
            tiktok_code: tiktok_code_label(error.and_then(ClientError::tiktok_code)),
        })
        .inc();
}

/// TikTok's code as a metric label: a code the protocol crate knows (a
/// status or a business code), `other` for the rest, so that the labels stay
/// a bounded set whatever TikTok answers; empty without one.
fn tiktok_code_label(code: Option<i64>) -> String {
    let Some(code) = code else {
        return String::new();
    };
    let status =
        i32::try_from(code).is_ok_and(|c| !matches!(StatusCode::from(c), StatusCode::Other(_)));
    if status || business_code_meaning(code).is_some() {
        code.to_string()
    } else {
        "other".to_owned()
    }
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
            (
                crate::pool::account_key(name, &sealed),
                state.vault.open(&sealed, SealContext::Account(name)),
            )
        }
        (None, Some(sealed)) => {
            let opened = state
                .vault
                .open(sealed, SealContext::Request(&m.request_id));
            let key = opened
                .as_ref()
                .map(|s| crate::pool::request_key(s.expose_secret()))
                .unwrap_or_else(|_| crate::pool::request_key(""));
            (key, opened)
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

/// Connects a session for `lane`; once TikTok named its uid, the lane is
/// paced by that uid, so that every lane of one TikTok account (its stored
/// account, per-request sessions) shares one pacing clock.
async fn connect<S: Store>(
    state: &AppState<S>,
    lane: &str,
    secret: &secrecy::SecretString,
) -> Result<Session, ClientError> {
    let settings = &state.settings;
    let session = Session::connect(settings.client_config(secret, settings.transport)?).await?;
    let pace_key = format!("uid:{}", session.identity().uid);
    if let Err(e) = state.store.set_pace_key(lane, &pace_key).await {
        tracing::warn!(error = %e, "outbox: the account's pace key could not be stored; it is paced by its lane");
    }
    Ok(session)
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
    let lease = Lease::taken(state.settings.lease);
    let attempt = tokio::select! {
        attempt = attempt(state, &m, given, &mut pool_key, &lease, started) => attempt,
        never = lease.keep(state, m.claim()) => match never {},
    };
    let held_since = lease.since();
    let recorded = match attempt {
        Attempt::GiveBack(wait) => return give_back(state, &m, wait, held_since).await,
        Attempt::LeaseLost => return,
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
    if m.followed {
        // The next message of its request (a caption) is due now.
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
    lease: &Lease,
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
    // Pacing: the claim gave it a slot; it waits for it without holding its
    // image (it is read again when it goes).
    let until_slot = m.send_at - now_ms();
    if until_slot > 0 {
        given = None;
        tokio::time::sleep(Duration::from_millis(until_slot.unsigned_abs())).await;
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
    send(state, m, &key, &secret, image, lease).await
}

/// Sends `m` on the pooled session `key` (connected with `secret` if need
/// be), unless its lease was lost by the time it would go.
async fn send<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    key: &str,
    secret: &secrecy::SecretString,
    image: Option<Vec<u8>>,
    lease: &Lease,
) -> Attempt {
    // Paced sends of one account's session go one at a time, each no
    // sooner than the interval after this process's previous one (one
    // answered late, or that waited for its connect, may have moved it).
    let min_interval = state.settings.pacing.min_interval;
    let _turn = if min_interval.is_zero() {
        None
    } else {
        Some(state.pool.turn(key).await)
    };
    let wait = state.pool.pace(key, min_interval);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    // Another gateway holds its lane now, or is about to: it goes from
    // there, on that gateway's session (this one is not even connected).
    // Held until the pacing after the answer is kept: the lane is not given
    // up to another gateway meanwhile.
    let Some(_sending) = state.ownership.begin_send(&m.lane, now_ms()) else {
        return Attempt::GiveBack(NOT_HELD_RETRY);
    };
    // Held open while it sends: a lane given up later closes its session
    // only after this send.
    let (session, _pin) = match state
        .pool
        .session_pinned(key, || connect(state, &m.lane, secret))
        .await
    {
        Ok(found) => found,
        Err(e) => return Attempt::Failed(e),
    };
    // The store and this process's clock hear of a late send (its connect,
    // its pacing) before it goes.
    let counted_from = keep_interval(state, m, key, m.send_at, now_ms()).await;
    // Another worker holds it now (a renewal said so, or none got through
    // for a whole lease): sending from here too would send it twice.
    if !lease.held() {
        return Attempt::LeaseLost;
    }
    let id = &m.client_message_id;
    let sent = match &m.content {
        Content::Text(text) => session.send_text_with_id(&m.target, text, id).await,
        Content::Image(_) => {
            match Image::from_bytes(image.unwrap_or_default(), state.settings.image_limit) {
                Ok(image) => session.send_image_with_id(&m.target, image, id).await,
                Err(e) => Err(e.into()),
            }
        }
    };
    // It reached TikTok no later than its answer (or the error): one that
    // came late (a slow link, a busy server or process) moves the next
    // slot, before the lane can be given up (leases go after the sends in
    // flight end).
    keep_interval(state, m, key, counted_from, now_ms()).await;
    match sent {
        Ok(sent) => Attempt::Sent(sent),
        Err(e) => Attempt::Failed(e),
    }
}

/// Keeps the pacing interval after a send of `m` that went, or was
/// answered, at `now`, more than [`LATE_MS`] after `from` (its slot, or
/// where this moved it before): the account's next slot moves to an
/// interval after now in the store, so the next send keeps the interval
/// whichever gateway makes it, and in the clock of this process's pooled
/// session `key` too. Returns what the next slot counts from. A store
/// that cannot be written is logged; the send goes or counts as it did.
async fn keep_interval<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    key: &str,
    from: i64,
    now: i64,
) -> i64 {
    let min_interval = state.settings.pacing.min_interval;
    let interval = millis(min_interval);
    if interval == 0 || now <= from + LATE_MS {
        return from;
    }
    state.pool.pace_after(key, min_interval);
    if let Err(e) = state.store.push_pacing(&m.lane, now + interval).await {
        tracing::warn!(error = %e, "outbox: a late send's pacing could not be stored");
    }
    now
}

/// How soon a message of a lane this gateway does not hold is due again.
/// It was claimed here, so the database still gave this gateway the lane (one
/// being given up, or a lease change that failed): at once, the worker
/// would claim it again at once until the lease moves or runs out.
const NOT_HELD_RETRY: Duration = Duration::from_millis(100);

/// How late a send (or its answer) may come after its slot before the
/// next slot moves.
const LATE_MS: i64 = 20;

/// Gives `m` back to the outbox untried, due in `wait`.
async fn give_back<S: Store>(
    state: &AppState<S>,
    m: &OutboxMessage,
    wait: Duration,
    held_since: tokio::time::Instant,
) {
    let at = now_ms() + millis(wait).min(i64::MAX / 2);
    let claim = m.claim();
    let released =
        while_unavailable(state, held_since, claim, || state.store.release(claim, at)).await;
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
    let claim = m.claim();
    let event = super::outcomes::sent(m, &server_message_id, transport);
    let logged = AtomicI64::new(0);
    let recorded = while_unavailable(state, held_since, claim, || async {
        let r = state
            .store
            .mark_sent(claim, &server_message_id, transport, now, event.clone())
            .await?;
        logged.store(logged_cursor(&r), Ordering::Relaxed);
        Ok(r.applied)
    })
    .await;
    drop(recording);
    if recorded.is_err() {
        state.waiters.wake(&m.request_id);
    }
    announce(state, super::outcomes::SENT, &logged);
    recorded
}

/// The cursor of the event `r` logged, or 0.
fn logged_cursor(r: &Recorded) -> i64 {
    r.event.and_then(|a| a.cursor()).unwrap_or(0)
}

/// Tells those waiting for events of the outcome event logged (if any).
fn announce<S>(state: &AppState<S>, kind: &'static str, logged: &AtomicI64) {
    let cursor = logged.load(Ordering::Relaxed);
    if cursor > 0 {
        state.event_logged(kind, cursor);
    }
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
    let next = Next::after(e, m, &state.settings, now);
    record(state, m, started, next.outcome(), Some(e));
    tracing::info!(request = %m.request_id, code = e.code(), error = %e, attempts = m.attempts, "outbox: delivery failed");
    let error = delivery_error(e);
    let claim = m.claim();
    let reached = e.reached_tiktok();
    let logged = AtomicI64::new(0);
    let recorded = while_unavailable(state, held_since, claim, || async {
        let (end, status) = match next {
            Next::Failed => (State::Failed, "failed"),
            Next::Unknown => (State::Unknown, "unknown"),
            Next::Retry(at) => {
                return state
                    .store
                    .reschedule(claim, at, reached, &error, now)
                    .await;
            }
        };
        let event = super::outcomes::failed(m, status, e);
        let r = state.store.finish(claim, end, &error, now, event).await?;
        logged.store(logged_cursor(&r), Ordering::Relaxed);
        Ok(r.applied)
    })
    .await;
    state.waiters.wake(&m.request_id);
    announce(state, super::outcomes::FAILED, &logged);
    recorded
}

#[cfg(test)]
mod tests {
    use super::tiktok_code_label;

    #[test]
    fn tiktok_codes_outside_the_known_ones_are_one_label() {
        assert_eq!(tiktok_code_label(None), "");
        assert_eq!(tiktok_code_label(Some(7193)), "7193");
        assert_eq!(tiktok_code_label(Some(4)), "4");
        assert_eq!(tiktok_code_label(Some(200_005)), "200005");
        assert_eq!(tiktok_code_label(Some(123_456_789)), "other");
        assert_eq!(tiktok_code_label(Some(-7)), "other");
        assert_eq!(tiktok_code_label(Some(i64::MAX)), "other");
    }
}
