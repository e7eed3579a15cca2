//! The outbox worker: claims due messages, delivers them over pooled client
//! sessions (one per TikTok account), and records the outcome by the client
//! error's retry class. An ambiguous outcome is retried only with the same client
//! message id, which TikTok de-duplicates; after a restart, rows left `sending`
//! come back when their lease expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use tiktok_dm_client::proto::access_key::hex;

use crate::now_ms;
use tiktok_dm_client::image::Image;
use tiktok_dm_client::proto::content::MessageText;
use tiktok_dm_client::proto::ids::ClientMessageId;
use tiktok_dm_client::{Config, Credentials, Error as ClientError, RetryClass, Session, Target};
use tiktok_dm_store::{Kind, OutboxMessage, State, Store};
use tokio::sync::{Mutex, watch};

use crate::api::AppState;

/// Client sessions by account, reused across messages.
#[derive(Clone, Default)]
pub struct Pool {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl Pool {
    /// Connected sessions.
    pub async fn len(&self) -> usize {
        self.sessions.lock().await.len()
    }

    /// Whether no session is connected.
    pub async fn is_empty(&self) -> bool {
        self.sessions.lock().await.is_empty()
    }
}

fn error_json(e: &ClientError) -> serde_json::Value {
    json!({"code": e.code(), "message": e.to_string(), "tiktok_code": e.tiktok_code()})
}

/// Backoff before attempt `n + 1`: 500 ms doubling, capped at a minute.
fn backoff(attempts: i64) -> i64 {
    (500i64 << attempts.clamp(0, 7)).min(60_000)
}

/// Runs until `stop` turns true.
pub async fn run<S: Store>(state: AppState<S>, pool: Pool, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let lease = i64::try_from(state.settings.lease.as_millis()).unwrap_or(120_000);
        let claimed = match state.store.claim_due(now_ms(), lease, 32).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "outbox: claiming failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut tasks = Vec::with_capacity(claimed.len());
        for message in claimed {
            let (state, pool) = (state.clone(), pool.clone());
            tasks.push(tokio::spawn(async move {
                deliver(&state, &pool, message).await
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn session_for<S: Store>(
    state: &AppState<S>,
    pool: &Pool,
    m: &OutboxMessage,
) -> Result<Session, ClientError> {
    let (pool_key, secret) = match (&m.account, &m.session_sealed) {
        (Some(name), _) => {
            let sealed = state
                .store
                .account(name)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| {
                    ClientError::InvalidSession(format!("the stored account {name:?} is gone"))
                })?;
            (
                format!("account:{name}"),
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
    let secret = secret.map_err(|e| ClientError::InvalidSession(e.to_string()))?;
    let mut sessions = pool.sessions.lock().await;
    if let Some(s) = sessions.get(&pool_key) {
        return Ok(s.clone());
    }
    let config = Config::builder(Credentials::parse(secret.expose_secret())?)
        .endpoints(state.settings.endpoints.clone())
        .transport(state.settings.transport)
        .image_limit(state.settings.image_limit)
        .build()?;
    let session = Session::connect(config).await?;
    sessions.insert(pool_key, session.clone());
    Ok(session)
}

async fn deliver<S: Store>(state: &AppState<S>, pool: &Pool, mut m: OutboxMessage) {
    // The image moves into the send rather than being copied (it may be 20 MB).
    let image_bytes = m.image.take();
    let result = async {
        let session = session_for(state, pool, &m).await?;
        let target = Target::parse(&m.conversation_id, &m.conversation_short_id.to_string())?;
        let id = ClientMessageId::parse(&m.client_message_id)
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        match m.kind {
            Kind::Text => {
                let text = MessageText::parse(m.text.as_deref().unwrap_or_default())
                    .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
                session.send_text_with_id(&target, &text, &id).await
            }
            Kind::Image => {
                let image =
                    Image::from_bytes(image_bytes.unwrap_or_default(), state.settings.image_limit)?;
                session.send_image_with_id(&target, image, &id).await
            }
        }
    }
    .await;
    let now = now_ms();
    let recorded = match result {
        Ok(sent) => {
            let transport = match sent.transport {
                tiktok_dm_client::Transport::Ws => "ws",
                tiktok_dm_client::Transport::Http => "http",
            };
            state
                .store
                .mark_sent(m.id, &sent.server_message_id.to_string(), transport, now)
                .await
        }
        Err(e) => {
            tracing::info!(request = %m.request_id, code = e.code(), attempts = m.attempts, "outbox: delivery failed");
            let last = m.attempts >= state.settings.max_attempts;
            match e.retry_class() {
                RetryClass::Permanent => {
                    state
                        .store
                        .finish(m.id, State::Failed, &error_json(&e), now)
                        .await
                }
                RetryClass::Ambiguous if last => {
                    state
                        .store
                        .finish(m.id, State::Unknown, &error_json(&e), now)
                        .await
                }
                RetryClass::Retryable | RetryClass::RetryAfter(_) if last => {
                    state
                        .store
                        .finish(m.id, State::Failed, &error_json(&e), now)
                        .await
                }
                RetryClass::RetryAfter(d) => {
                    let wait = i64::try_from(d.as_millis()).unwrap_or(60_000);
                    state
                        .store
                        .reschedule(m.id, now + wait, &error_json(&e), now)
                        .await
                }
                // Ambiguous: the same client message id goes again; TikTok de-duplicates.
                RetryClass::Retryable | RetryClass::Ambiguous => {
                    state
                        .store
                        .reschedule(m.id, now + backoff(m.attempts), &error_json(&e), now)
                        .await
                }
            }
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the message is claimed again with the same id.
        tracing::error!(error = %e, "outbox: recording an outcome failed");
    }
}
