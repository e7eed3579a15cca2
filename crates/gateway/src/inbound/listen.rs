//! One stored account's listener: its pooled session's events into the log.

use std::collections::HashMap;
use std::time::Duration;

use tiktok_dm_client::{Event, ListenOptions, Listened, Session};
use tiktok_dm_proto::ids::ConversationShortId;
use tiktok_dm_store::{AccountStatus, Appended, NewEvent, Store};

use crate::accounts::SessionError;
use crate::now_ms;
use crate::state::AppState;

/// The cursor row (under no conversation) that holds when the account's last
/// catch-up began, in microseconds like an index: on a restart, messages of
/// conversations without a cursor are caught up from there.
const WATERMARK: &str = "";
/// How far before the watermark a restart reads (clocks of TikTok's servers
/// and ours differ; what is read twice the log drops by its dedupe key).
const WATERMARK_MARGIN_MS: i64 = 5 * 60 * 1000;

/// How long a failed append waits before it is tried again (the database is
/// away: the event is held, not dropped).
const APPEND_RETRY: Duration = Duration::from_millis(500);

/// Listens on `name` until its session ends or is refused. Returns when the
/// listener ended; the supervisor starts it again after a backoff, unless
/// the account was marked expired.
pub(super) async fn account<S: Store>(state: AppState<S>, name: String) {
    let (key, session) = match open(&state, &name).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(Refused(key)) => {
            // Not when a new session was stored since it was read.
            if still_stored(&state, &name, &key).await {
                expire(&state, &name).await;
            }
            return;
        }
    };
    let _pin = state.pool.pin(&key);
    let options = match resume_options(&state, &name).await {
        Some(o) => o,
        None => return,
    };
    let mut listener = session.listen(options);
    tracing::info!(account = %name, "listening");
    while let Some(item) = listener.next().await {
        match item {
            Listened::Event(event) => {
                learn_short_id(&state, &key, &event).await;
                log_event(&state, &name, &event).await;
            }
            Listened::CaughtUp {
                events,
                mut cursors,
                since_ms,
            } => {
                tracing::debug!(account = %name, events, "caught up");
                cursors.insert(WATERMARK.to_owned(), since_ms.saturating_mul(1000));
                save_cursors(&state, &name, cursors).await;
            }
            Listened::CatchUpFailed(reason) => {
                tracing::warn!(account = %name, %reason, "catching up failed; retried at the next reconnect");
            }
            Listened::SessionRejected { status } => {
                tracing::warn!(account = %name, status, "TikTok refused the stored session; the account is marked expired");
                state.pool.forget(&key);
                // Not when a new session was stored meanwhile (its key differs):
                // that one gets its own listener.
                if still_stored(&state, &name, &key).await {
                    expire(&state, &name).await;
                }
                return;
            }
        }
    }
    tracing::info!(account = %name, "listener ended");
}

/// TikTok refused the session of this pool key.
struct Refused(String);

/// The account's pooled session (connecting it if needed). `Ok(None)` when
/// the account is gone or cannot be read or reached now (tried again later).
async fn open<S: Store>(
    state: &AppState<S>,
    name: &str,
) -> Result<Option<(String, Session)>, Refused> {
    match crate::accounts::account_session(state, name).await {
        Ok(opened) => Ok(Some(opened)),
        Err(SessionError::NotFound) => Ok(None),
        Err(SessionError::Store(e)) => {
            tracing::warn!(account = %name, error = %e, "listening: the account cannot be read");
            Ok(None)
        }
        Err(SessionError::Unsealed(e)) => {
            tracing::error!(account = %name, error = %e, "listening: the stored session does not open");
            Ok(None)
        }
        Err(SessionError::Refused(_, key)) => Err(Refused(key)),
        Err(SessionError::Connect(e)) => {
            tracing::warn!(account = %name, error = %e, "listening: cannot connect");
            Ok(None)
        }
    }
}

/// Where to resume: the account's saved cursors; for conversations without
/// one, what came since the last catch-up began (the first time: from now).
async fn resume_options<S: Store>(state: &AppState<S>, name: &str) -> Option<ListenOptions> {
    let saved = match state.store.conversation_cursors(name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(account = %name, error = %e, "listening: the cursors cannot be read");
            return None;
        }
    };
    let mut cursors: HashMap<String, i64> = saved
        .into_iter()
        .map(|c| (c.conversation_id, c.last_index))
        .collect();
    // Never caught up before: from now. Else from the last catch-up's start.
    let new_since_ms = cursors
        .remove(WATERMARK)
        .map(|us| (us / 1000).saturating_sub(WATERMARK_MARGIN_MS));
    Some(ListenOptions {
        cursors,
        new_since_ms,
        catch_up_at_start: true,
        poll_interval: state.settings.listen_poll,
    })
}

/// The stored `data` of an event: its fields without its `type`, with the
/// account.
fn stored_payload(account: &str, event: &Event) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
        map.insert("account".into(), account.into());
    }
    value
}

/// An event's `data` as webhooks and `/v1/events` show it: as stored,
/// without what opens a received image (the key that owns the account
/// fetches it through the gateway). `None` for text that is not JSON.
pub fn public_payload(stored: &str) -> Option<serde_json::Value> {
    let mut value: serde_json::Value = serde_json::from_str(stored).ok()?;
    without_image_key(&mut value);
    Some(value)
}

/// Removes `image.decrypt_key` from an event's or a message's JSON.
pub fn without_image_key(holder: &mut serde_json::Value) {
    if let Some(image) = holder.get_mut("image").and_then(|i| i.as_object_mut()) {
        image.remove("decrypt_key");
    }
}

async fn log_event<S: Store>(state: &AppState<S>, name: &str, event: &Event) {
    let occurred_at = match event {
        Event::MessageReceived(m) if m.created_at_ms > 0 => m.created_at_ms,
        _ => now_ms(),
    };
    let new = NewEvent {
        account: name.to_owned(),
        event_type: event.type_name().to_owned(),
        conversation_id: Some(event.conversation_id().to_owned()),
        dedupe_key: event.dedupe_key(),
        payload: stored_payload(name, event).to_string(),
        occurred_at,
    };
    // Held until the database takes it: an event heard is not dropped.
    let appended = loop {
        match state.store.append_events(vec![new.clone()], now_ms()).await {
            Ok(a) => break a,
            // The database is away: held and tried again, not dropped.
            Err(e @ tiktok_dm_store::Error::Unavailable(_)) => {
                tracing::warn!(account = %name, error = %e, "an event cannot be logged yet; retrying");
                tokio::time::sleep(APPEND_RETRY).await;
            }
            // A value no backend stores (a NUL from the network): retrying
            // would stop this account's listener for good.
            Err(e) => {
                tracing::error!(account = %name, error = %e, "an event was refused by the store and is dropped");
                return;
            }
        }
    };
    if let Some(Appended::New { cursor }) = appended.first() {
        state.event_logged(event.type_name(), *cursor);
    }
}

/// A received message tells its conversation's short id: a send that
/// leaves it out finds it even before the inbox lists the conversation.
async fn learn_short_id<S: Store>(state: &AppState<S>, key: &str, event: &Event) {
    if let Event::MessageReceived(m) = event {
        let short = m
            .conversation_short_id
            .and_then(|s| ConversationShortId::new(s).ok());
        if let Some(short) = short {
            state.short_ids.learn(key, &m.conversation_id, short).await;
        }
    }
}

async fn save_cursors<S: Store>(
    state: &AppState<S>,
    name: &str,
    cursors: std::collections::BTreeMap<String, i64>,
) {
    for (conversation, index) in cursors {
        if let Err(e) = state
            .store
            .set_conversation_cursor(name, &conversation, 0, index)
            .await
        {
            // The next catch-up reads a little more; the log drops repeats.
            tracing::warn!(account = %name, error = %e, "a catch-up cursor was not saved");
        }
    }
}

/// Whether the account's stored session is still the one of pool key `key`.
async fn still_stored<S: Store>(state: &AppState<S>, name: &str, key: &str) -> bool {
    match state.store.account(name).await {
        Ok(Some(sealed)) => crate::pool::account_key(name, &sealed) == key,
        Ok(None) => false,
        // Unknown: marking it expired would be the wrong guess either way.
        Err(_) => false,
    }
}

async fn expire<S: Store>(state: &AppState<S>, name: &str) {
    if let Err(e) = state
        .store
        .set_account_status(name, AccountStatus::Expired, now_ms())
        .await
    {
        tracing::warn!(account = %name, error = %e, "the account could not be marked expired");
    }
}
