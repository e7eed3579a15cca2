//! `POST /v1/messages`, `GET /v1/messages/{id}`, `GET /v1/usage`.

use std::time::Duration;

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiktok_dm_proto::access_key::hex;
use tiktok_dm_store::{
    ApiKey, Enqueued, NewRequest, OutboxMessage, QuotaWindow, RequestStatus, Snapshot,
    State as MessageState, Store, UsageTotals,
};
use tokio::sync::OwnedSemaphorePermit;

use super::address;
use super::auth::Caller;
use super::error::{ApiError, ErrorCode};
use super::input::{Address, SendBody, room_needed};
use super::sender::{new_request, sender};
use crate::now_ms;
use crate::state::AppState;
use crate::waiters::{Delivered, Seen, Waiter, Waiters, next_poll};
use crate::{outbox, quota};

/// One read for an answer: the request (if any), the key's totals, its windows.
async fn snapshot<S: Store>(
    store: &S,
    key: &ApiKey,
    request_id: Option<&str>,
    now: i64,
) -> Result<(Snapshot, Vec<QuotaWindow>), ApiError> {
    let windows = quota::windows(key, now);
    let (day, month) = quota::window_starts(now);
    let snap = store
        .snapshot(request_id, key.id, &windows, day, month)
        .await?;
    Ok((snap, windows))
}

/// Quota as the original node reported it: per window, limit, used, remaining, resets_at.
fn quota_json(windows: &[QuotaWindow], used: &[u64]) -> Value {
    let mut out = serde_json::Map::new();
    for (w, used) in windows.iter().zip(used) {
        out.insert(
            w.name.to_owned(),
            json!({"limit": w.limit, "used": used, "remaining": w.limit.saturating_sub(*used), "resets_at": w.resets_at / 1000}),
        );
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

/// `usage`: this request's messages and image bytes (when there is a request)
/// and the key's running totals.
fn usage_json(key: &ApiKey, totals: &UsageTotals, request: Option<&RequestStatus>) -> Value {
    let mut usage = json!({
        "key": key.name,
        "totals": {
            "messages_today": totals.today,
            "messages_this_month": totals.month,
            "messages": totals.total,
            "image_bytes": totals.image_bytes,
        },
    });
    if let Some(r) = request {
        usage["messages"] = json!(r.messages.len());
        usage["image_bytes"] = json!(r.image_bytes);
    }
    usage
}

/// The tightest quota window (least remaining) as the `X-RateLimit-*` values:
/// limit, remaining, reset (Unix seconds). `None` for a key without limits.
fn tightest(quota: &Value) -> Option<(u64, u64, u64)> {
    let w = quota
        .as_object()?
        .values()
        .min_by_key(|w| w["remaining"].as_u64().unwrap_or(u64::MAX))?;
    Some((
        w["limit"].as_u64()?,
        w["remaining"].as_u64()?,
        w["resets_at"].as_u64()?,
    ))
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds) for the window
/// with the fewest messages left; nothing when the key has no limit.
fn add_rate_limit_headers(response: &mut Response, quota: &Value) {
    if let Some(values) = tightest(quota) {
        super::error::insert_rate_limit_headers(response, values);
    }
}

/// A failed answer to a key with a quota carries the `X-RateLimit-*` headers
/// too, like every other answer to it (one more read, on the error path only).
async fn with_rate_limit<S: Store>(
    store: &S,
    key: &ApiKey,
    answer: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    match answer {
        Err(mut e)
            if e.rate_limit.is_none()
                && (key.daily_limit.is_some() || key.monthly_limit.is_some()) =>
        {
            if let Ok((snap, windows)) = snapshot(store, key, None, now_ms()).await {
                e.rate_limit = tightest(&quota_json(&windows, &snap.used));
            }
            Err(e)
        }
        other => other,
    }
}

fn messages_json(status: &RequestStatus) -> Vec<Value> {
    status
        .messages
        .iter()
        .map(|m| {
            json!({
                "kind": m.kind,
                "client_message_id": m.client_message_id,
                "server_message_id": m.server_message_id,
                "state": m.state,
                "transport": m.transport,
            })
        })
        .collect()
}

/// The answer for a request's current status, in the original node's shape.
fn status_response(
    key: &ApiKey,
    status: &RequestStatus,
    snap: &Snapshot,
    windows: &[QuotaWindow],
) -> Response {
    let quota = quota_json(windows, &snap.used);
    let all_final = status.messages.iter().all(|m| m.state.is_final());
    let failure = status
        .messages
        .iter()
        .find(|m| matches!(m.state, MessageState::Failed | MessageState::Unknown));
    let sent = status
        .messages
        .iter()
        .filter(|m| m.state == MessageState::Sent)
        .count();
    let usage = usage_json(key, &snap.totals, Some(status));
    let mut body = json!({
        "id": status.id,
        "success": failure.is_none(),
        "messages": messages_json(status),
        "usage": usage,
        "quota": quota,
    });
    let code = match (failure, all_final) {
        (Some(m), _) => {
            let api = m.error.as_ref().map_or_else(
                || {
                    ApiError::new(
                        ErrorCode::UpstreamUnavailable,
                        "the message was not delivered",
                    )
                },
                ApiError::from_delivery,
            );
            let message = api.message.clone();
            // "the image was sent but the text was not: ", for any kinds.
            let first_sent = status
                .messages
                .iter()
                .find(|m| m.state == MessageState::Sent);
            let prefix = first_sent.map_or_else(String::new, |done| {
                format!("the {} was sent but the {} was not: ", done.kind, m.kind)
            });
            body["message"] = json!(format!("{prefix}{message}"));
            body["error"] = json!({"code": api.code.as_str(), "message": message, "tiktok_code": api.tiktok_code});
            api.status()
        }
        (None, true) => {
            body["message"] = json!(if sent == 1 {
                "sent 1 message".to_owned()
            } else {
                format!("sent {sent} messages")
            });
            StatusCode::OK
        }
        (None, false) => {
            body["message"] = json!("accepted; delivery in progress");
            body["status_url"] = json!(format!("/v1/messages/{}", status.id));
            StatusCode::ACCEPTED
        }
    };
    let mut response = (code, Json(body)).into_response();
    add_rate_limit_headers(&mut response, &quota);
    response
}

/// The longest `Idempotency-Key` accepted (as Stripe's API allows).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A header's value as text, trimmed: `None` when it is absent or blank; an
/// error with `code` when it holds anything but visible ASCII. The message
/// names the header, never its value (which may be a session).
fn text_header<'h>(
    headers: &'h axum::http::HeaderMap,
    name: &str,
    code: ErrorCode,
) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::new(
            code,
            format!("the {name} header must be visible ASCII text (it holds other bytes)"),
        )
    })?;
    Ok(Some(text.trim()).filter(|t| !t.is_empty()))
}

/// `POST /v1/messages` (JSON or multipart form data).
pub(crate) async fn post<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let answer = accept_and_wait(&state, &key, &headers, request).await;
    with_rate_limit(&state.store, &key, answer).await
}

/// Reads, checks and accepts a send, starts its first delivery, and waits
/// for the outcome (or answers 202 at once when asked to, or when too many
/// sends are waiting). Until it is accepted, a send taking longer than
/// `request_timeout` is answered 408 and nothing is kept; once accepted, the
/// answer is always its id (200, 202 or the delivery's failure), never 408:
/// the wait ends by the same deadline.
async fn accept_and_wait<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.settings.request_timeout;
    let asked = SendHeaders::read(headers)?;
    let read = read_send(state, key, headers, request, &asked);
    let read = tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| request_timeout(state))??;
    let now = now_ms();
    let windows = quota::windows(key, now);
    let (enqueued, mut waiting, message_count, (reserved, lane)) = match read {
        Read::New(new, room, reserved) => {
            let message_count = new.messages.len() as u64;
            // Registered before the enqueue: the worker may deliver the first
            // message before this task runs again, and its news must not be
            // missed.
            let waiting = Waiting::new(&state.waiters, &new.id);
            let lane = new.lane.clone();
            let enqueued = state.store.enqueue(*new, &windows, now).await;
            // The body and the image are no longer held here.
            drop(room);
            (enqueued?, waiting, message_count, (reserved, lane))
        }
        Read::Repeat(repeat) => (
            repeat,
            Waiting::new(&state.waiters, ""),
            0,
            (None, String::new()),
        ),
    };
    let known = match enqueued {
        Enqueued::Accepted {
            claimed, snapshot, ..
        } => {
            state.metrics.accepted.inc_by(message_count);
            start_first(state, claimed, reserved, &lane);
            Some((*snapshot, windows))
        }
        Enqueued::Replay { request_id } => {
            waiting = Waiting::new(&state.waiters, &request_id);
            None
        }
        refused => return Err(refusal(refused, now)),
    };
    let deadline = deadline.min(tokio::time::Instant::now() + wait_for(state, asked.prefer_async));
    waiting
        .outcome(
            &state.store,
            key,
            known,
            deadline,
            state.closing.subscribe(),
        )
        .await
}

/// A send as read: the request to accept (with the room its body takes
/// until accepted, and the delivery room reserved for its first message when
/// it claims it), or, for a repeated idempotency key, what the request kept
/// under it makes of it.
enum Read {
    New(
        Box<NewRequest>,
        Option<OwnedSemaphorePermit>,
        Option<OwnedSemaphorePermit>,
    ),
    Repeat(Enqueued),
}

/// Reads and checks a send, and finds its conversation when the request
/// does not give it whole (only after its idempotency key, if any, is known
/// to be new: a replay does not depend on TikTok answering).
async fn read_send<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
    headers: &HeaderMap,
    request: Request,
    asked: &SendHeaders<'_>,
) -> Result<Read, ApiError> {
    // A key whose quota is used up is refused before its body takes room in
    // the body budget and is read (one read, for a body large enough to take
    // room; a small one is refused by the acceptance).
    if room_needed(state, headers).is_some() {
        if let Some(refused) = quota_used_up(state, key).await? {
            return Err(refused);
        }
    }
    let SendBody { input, room } = SendBody::from_request(request, state).await?;
    let account_field = input.account.clone();
    let valid = input.validate(state.settings.image_limit)?;
    let request_id = new_request_id(now_ms());
    let sender = sender(state, key, account_field, asked.session, &request_id).await?;
    let request_hash = valid.request_hash(sender.account());
    if let (Address::Find(_), Some(k)) = (&valid.address, asked.idempotency_key) {
        if let Some(repeat) = state
            .store
            .idempotent_repeat(key.id, k, &request_hash)
            .await?
        {
            return Ok(Read::Repeat(repeat));
        }
    }
    let of = sender.session_of(asked.session);
    let target = address::target(state, of, valid.address).await?;
    let mut new = new_request(
        key,
        request_id,
        (target, valid.outgoing),
        sender,
        (request_hash, asked.idempotency_key),
        state.settings.lease_ms(),
    );
    let reserved = if claims_first(state, &new.lane).await {
        outbox::reserve(state)
    } else {
        None
    };
    if reserved.is_none() {
        new.claim_first_ms = None;
    }
    Ok(Read::New(Box::new(new), room, reserved))
}

/// Whether the acceptance claims its first message for delivery from here:
/// only when this gateway holds the lane (another delivers the others'),
/// and sends are not paced (a paced message takes its slot from a claim).
async fn claims_first<S: Store>(state: &AppState<S>, lane: &str) -> bool {
    crate::ownership::adopt(state, lane).await
        && state.settings.pacing == crate::config::Pacing::OFF
}

/// The 408 for a send not accepted within `request_timeout` (its body still
/// arriving, or the database slow to answer a read): nothing was kept.
fn request_timeout<S: Store>(state: &AppState<S>) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!(
            "the request was not accepted within {} s; nothing was kept",
            state.settings.request_timeout.as_secs_f64()
        ),
    )
}

/// The refusal for a key with a window already used up, read before the
/// send's body (one read, for a key with limits and a body large enough to
/// take room); the acceptance checks
/// the quota again in its transaction.
async fn quota_used_up<S: Store>(
    state: &AppState<S>,
    key: &ApiKey,
) -> Result<Option<ApiError>, ApiError> {
    if key.daily_limit.is_none() && key.monthly_limit.is_none() {
        return Ok(None);
    }
    let now = now_ms();
    let (snap, windows) = snapshot(&state.store, key, None, now).await?;
    let full = windows
        .iter()
        .zip(&snap.used)
        .find(|(w, used)| **used >= w.limit);
    Ok(full.map(|(w, used)| {
        refusal(
            Enqueued::QuotaExceeded {
                window: w.name,
                limit: w.limit,
                used: *used,
                resets_at: w.resets_at,
            },
            now,
        )
    }))
}

/// What a send's headers ask for. A header that is there but unreadable is
/// an error, not an absence: taken for absent, a session would fall back to
/// the key's stored account, and an idempotency key would silently protect
/// nothing.
struct SendHeaders<'h> {
    /// `X-TikTok-Session`.
    session: Option<&'h str>,
    /// `Idempotency-Key`.
    idempotency_key: Option<&'h str>,
    /// `Prefer: respond-async`.
    prefer_async: bool,
}

impl<'h> SendHeaders<'h> {
    fn read(headers: &'h HeaderMap) -> Result<Self, ApiError> {
        let session = text_header(headers, "x-tiktok-session", ErrorCode::SessionInvalidFormat)?;
        let idempotency_key =
            text_header(headers, "idempotency-key", ErrorCode::IdempotencyKeyInvalid)?;
        if let Some(k) = idempotency_key.filter(|k| k.len() > MAX_IDEMPOTENCY_KEY) {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyInvalid,
                format!(
                    "Idempotency-Key is {} characters long; the limit is {MAX_IDEMPOTENCY_KEY}",
                    k.len()
                ),
            ));
        }
        let prefer_async = headers
            .get("prefer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.contains("respond-async"));
        Ok(Self {
            session,
            idempotency_key,
            prefer_async,
        })
    }
}

/// Starts delivering the message claimed with the acceptance, from here, in
/// the room reserved for it, on a task of its own (which a client hanging up
/// does not cancel). The store claims it only when asked to, and
/// [`read_send`] asks only with room reserved; with nothing claimed, the
/// worker claims it.
fn start_first<S: Store>(
    state: &AppState<S>,
    claimed: Option<Box<OutboxMessage>>,
    reserved: Option<OwnedSemaphorePermit>,
    lane: &str,
) {
    if let Some((first, room)) = claimed.zip(reserved) {
        return outbox::start(state, first, room);
    }
    state.wake.notify_one();
    if !state.ownership.owns(lane, crate::now_ms()) {
        // A lane nobody holds yet (a new session's): the next ownership tick
        // is now rather than up to a third of a lease away; and a lane that
        // is another gateway's: that one hears of it now.
        state.ownership.nudge();
        crate::ownership::want(state, lane);
    }
}

/// The answer to an acceptance the store refused.
fn refusal(refused: Enqueued, now: i64) -> ApiError {
    match refused {
        // Revoked between the key's read and the acceptance.
        Enqueued::KeyRevoked => {
            ApiError::new(ErrorCode::ApiKeyRevoked, "the API key has been revoked")
        }
        Enqueued::IdempotencyConflict => ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was used for a different request",
        ),
        Enqueued::QuotaExceeded {
            window,
            limit,
            used,
            resets_at,
        } => {
            let reset = u64::try_from(resets_at / 1000).unwrap_or(0);
            let mut e = ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "the {window} quota of {limit} messages is used up ({used} counted); it resets at {}",
                    tiktok_dm_proto::time::Utc::from_unix(reset).rfc3339()
                ),
            );
            e.retry_after = Some(u64::try_from((resets_at - now).max(1000) / 1000).unwrap_or(1));
            e.rate_limit = Some((limit, 0, reset));
            e
        }
        Enqueued::Accepted { .. } | Enqueued::Replay { .. } => {
            ApiError::internal(&"an acceptance was taken for a refusal")
        }
    }
}

/// How long a send waits for its outcome: not at all when it asks to answer
/// at once, or when more than `max_waiting_sends` already wait (its message
/// is accepted all the same: arrivals the gateway cannot keep up with must
/// not pile up waiting connections without end); else `wait_for_delivery`.
fn wait_for<S: Store>(state: &AppState<S>, prefer_async: bool) -> Duration {
    let crowded = state.waiters.len() > state.settings.max_waiting_sends;
    if crowded && !prefer_async {
        state.metrics.answered_early.inc();
    }
    if prefer_async || crowded {
        Duration::ZERO
    } else {
        state.settings.wait_for_delivery
    }
}

/// A send handler's registration with the worker's news; unregistered on drop,
/// whichever way the handler ends.
struct Waiting<'a> {
    waiters: &'a Waiters,
    request_id: String,
    waiter: Arc<Waiter>,
}

impl<'a> Waiting<'a> {
    fn new(waiters: &'a Waiters, request_id: &str) -> Self {
        Self {
            waiters,
            request_id: request_id.to_owned(),
            waiter: waiters.register(request_id),
        }
    }

    /// Waits until every message of the request is final or `deadline` passes,
    /// then answers with its status. `known` is the status and usage as of
    /// acceptance; the worker's recorded deliveries are applied to it, and the
    /// store is read only when something else happened (a failure, a retry),
    /// when nothing is known (an idempotent repeat), and now and then in case
    /// another process delivered ([`next_poll`]; always at the deadline).
    /// When `closing` turns true (the gateway is stopping) it answers at once.
    async fn outcome<S: Store>(
        &self,
        store: &S,
        key: &ApiKey,
        mut known: Option<(Snapshot, Vec<QuotaWindow>)>,
        deadline: tokio::time::Instant,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Response, ApiError> {
        let mut seen = Seen::default();
        let mut poll = next_poll(None, self.waiters.len());
        loop {
            // Armed before the news is looked at, so news in between is not lost.
            let woken = self.waiter.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (delivered, must_read) = self.waiter.news(&mut seen);
            let (mut snap, windows) = match known.take() {
                Some(k) if !must_read => k,
                _ => read_status(store, self.waiters, key, &self.request_id).await?,
            };
            let mut status = snap
                .status
                .take()
                .ok_or_else(|| ApiError::internal(&"accepted request vanished"))?;
            apply_deliveries(&mut status, delivered);
            let all_final = status.messages.iter().all(|m| m.state.is_final());
            let now = tokio::time::Instant::now();
            if all_final || now >= deadline || *closing.borrow() {
                return Ok(status_response(key, &status, &snap, &windows));
            }
            snap.status = Some(status);
            known = Some((snap, windows));
            tokio::select! {
                () = &mut woken => {}
                Ok(_) = closing.wait_for(|c| *c) => {}
                () = tokio::time::sleep((deadline - now).min(poll)) => {
                    known = None;
                    poll = next_poll(Some(poll), self.waiters.len());
                }
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiters.unregister(&self.request_id, &self.waiter);
    }
}

/// A request's status as the store has it, with the deliveries whose commit
/// has not ended yet applied (taken before the read, so a commit that ends in
/// between is in one or the other).
async fn read_status<S: Store>(
    store: &S,
    waiters: &Waiters,
    key: &ApiKey,
    request_id: &str,
) -> Result<(Snapshot, Vec<QuotaWindow>), ApiError> {
    let unrecorded = waiters.unrecorded(request_id);
    let (mut snap, windows) = snapshot(store, key, Some(request_id), now_ms()).await?;
    if let Some(status) = snap.status.as_mut() {
        apply_deliveries(status, unrecorded);
    }
    Ok((snap, windows))
}

/// Marks each delivered message sent, unless it already ended otherwise.
fn apply_deliveries(status: &mut RequestStatus, delivered: Vec<Delivered>) {
    for d in delivered {
        let message = usize::try_from(d.position)
            .ok()
            .and_then(|i| status.messages.get_mut(i));
        if let Some(m) = message.filter(|m| !m.state.is_final()) {
            m.state = MessageState::Sent;
            m.server_message_id = Some(d.server_message_id);
            m.transport = Some(d.transport.to_owned());
            m.error = None;
        }
    }
}

/// `GET /v1/messages/{id}`.
pub(crate) async fn get<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let answer = async {
        let (snap, windows) = read_status(&state.store, &state.waiters, &key, &id).await?;
        match &snap.status {
            Some(status) => Ok(status_response(&key, status, &snap, &windows)),
            None => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no request {id:?} for this API key"),
            )),
        }
    };
    with_rate_limit(&state.store, &key, answer.await).await
}

/// `GET /v1/usage`.
pub(crate) async fn usage<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
) -> Result<Response, ApiError> {
    let (snap, windows) = snapshot(&state.store, &key, None, now_ms()).await?;
    let quota = quota_json(&windows, &snap.used);
    let body = json!({"success": true, "message": "usage and quota of this API key", "usage": usage_json(&key, &snap.totals, None), "quota": quota});
    let mut response = Json(body).into_response();
    add_rate_limit_headers(&mut response, &quota);
    Ok(response)
}

/// A new request id: `req_`, the acceptance time in milliseconds (12 hex
/// digits), then 80 random bits (20 hex digits). Ids made later sort later, so
/// the store appends them to its indexes instead of writing into random pages;
/// the random part keeps them unguessable.
fn new_request_id(now_ms: i64) -> String {
    let millis = u64::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("req_{millis:012x}{}", hex(&rand::random::<[u8; 10]>()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_sort_by_acceptance_time_and_differ_within_a_millisecond() {
        let a = super::new_request_id(1_764_000_000_000);
        let b = super::new_request_id(1_764_000_000_000);
        let c = super::new_request_id(1_764_000_000_001);
        assert_eq!(a.len(), 4 + 12 + 20);
        assert!(a.starts_with("req_019ab") && a[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a < c && b < c);
    }
}
