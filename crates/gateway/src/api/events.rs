//! `GET /v1/events`: the event log of the accounts the key may use, after a
//! cursor, waiting up to `wait` seconds for one (a long poll, for users with
//! no public URL for webhooks).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use tiktok_dm_store::{ApiKey, EventFilter, Store, StoredEvent};

use super::auth::Caller;
use super::error::{ApiError, ErrorCode};
use crate::inbound::public_payload;
use crate::state::AppState;

/// The longest long poll.
pub const MAX_WAIT_SECS: u64 = 60;
/// The most events in one answer.
pub const MAX_LIMIT: u32 = 500;
/// How often a long poll reads the store for events other gateways logged.
const POLL: Duration = Duration::from_secs(1);

pub use crate::webhooks::EVENT_TYPES;

struct Asked {
    after: i64,
    wait: Duration,
    limit: u32,
    filter: EventFilter,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn number(
    q: &HashMap<String, String>,
    name: &str,
    max: u64,
    default: u64,
) -> Result<u64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(bad(format!(
                "{name} must be a whole number from 0 to {max}"
            ))),
        },
    }
}

/// Reads the query, and which accounts the key may see.
fn asked(key: &ApiKey, q: &HashMap<String, String>) -> Result<Asked, ApiError> {
    if let Some(unknown) = q
        .keys()
        .find(|k| !["after", "wait", "limit", "types", "account"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown query parameter {unknown:?}; use after, wait, limit, types, account"
        )));
    }
    let after = number(q, "after", i64::MAX as u64, 0)? as i64;
    let wait = Duration::from_secs(number(q, "wait", MAX_WAIT_SECS, 0)?);
    let limit = number(q, "limit", u64::from(MAX_LIMIT), 100)?.max(1) as u32;
    let types = match q.get("types") {
        None => None,
        Some(list) => {
            let types: Vec<String> = list.split(',').map(|t| t.trim().to_owned()).collect();
            if let Some(t) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                return Err(bad(format!(
                    "unknown event type {t:?}; known: {}",
                    EVENT_TYPES.join(", ")
                )));
            }
            Some(types)
        }
    };
    let mut accounts = (!key.any_account).then(|| key.accounts.clone());
    if let Some(one) = q.get("account") {
        let allowed = accounts.as_ref().is_none_or(|a| a.contains(one));
        if !allowed {
            return Err(ApiError::new(
                ErrorCode::AccountNotFound,
                format!("no stored account named {one:?} for this API key"),
            ));
        }
        accounts = Some(vec![one.clone()]);
    }
    Ok(Asked {
        after,
        wait,
        limit,
        filter: EventFilter { accounts, types },
    })
}

/// One event as the API shows it.
pub fn event_json(e: &StoredEvent) -> Value {
    json!({
        "cursor": e.cursor.to_string(),
        "type": e.event_type,
        "account": e.account,
        "timestamp": crate::rfc3339_ms(e.occurred_at),
        "data": public_payload(&e.payload).unwrap_or_default(),
    })
}

/// `GET /v1/events?after=CURSOR&wait=SECONDS&limit=N&types=a,b&account=NAME`.
pub async fn list<S: Store>(
    State(state): State<AppState<S>>,
    Caller(key): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let asked = asked(&key, &q)?;
    // An empty answer before the request timeout (408) ends the request.
    let room = state
        .settings
        .request_timeout
        .saturating_sub(Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + asked.wait.min(room);
    let mut latest = state.latest_event.subscribe();
    let events = loop {
        let events = state
            .store
            .events_after(asked.after, &asked.filter, asked.limit)
            .await?;
        let closing = *state.closing.borrow();
        if !events.is_empty() || tokio::time::Instant::now() >= deadline || closing {
            break events;
        }
        let next = deadline.min(tokio::time::Instant::now() + POLL);
        let _ = tokio::time::timeout_at(next, latest.changed()).await;
    };
    let next_cursor = events.last().map_or(asked.after, |e| e.cursor);
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor.to_string(),
    })))
}
