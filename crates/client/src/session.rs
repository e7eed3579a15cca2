//! `Session`: one TikTok account. It discovers the account's identity, keeps the
//! frontier socket (unless the transport is `http`), and sends messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::{
    SendParams, SplicedField, WebContext, im_frame, send_message_request,
};
use tiktok_dm_proto::content::{MESSAGE_TYPE_TEXT, MessageText};
use tiktok_dm_proto::ids::{ClientMessageId, ServerMessageId};
use tiktok_dm_proto::schema::{Request, Response};
use tiktok_dm_proto::status::{RetryClass, classify_send_response};
use tokio::sync::broadcast;

use crate::backoff::retransmit_delay;
use crate::config::{Config, TransportMode};
use crate::discover::{self, Identity};
use crate::error::{Error, Result};
use crate::frontier::{ConnectionState, Frontier};
use crate::http;
use crate::ticket_guard::TicketGuard;
use tiktok_dm_proto::events::Event;

pub use tiktok_dm_proto::message::Target;

/// Which transport carried a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The frontier WebSocket.
    Ws,
    /// The im-api HTTP routes.
    Http,
}

/// A message TikTok accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// Our id for it.
    pub client_message_id: ClientMessageId,
    /// TikTok's id for it.
    pub server_message_id: ServerMessageId,
    /// How it went.
    pub transport: Transport,
}

pub(crate) struct Inner {
    pub(crate) config: Arc<Config>,
    pub(crate) identity: Identity,
    pub(crate) http: http::HttpTransport,
    frontier: Option<Frontier>,
    pub(crate) next_seq: AtomicI64,
    pushes: broadcast::Sender<Event>,
    /// The context headers, encoded once for requests and for frames; every
    /// request is built without them and has them spliced in by `transmit`.
    request_headers: SplicedField,
    frame_headers: SplicedField,
    /// The ticket-guard key of HTTP sends, drawn at the session's first HTTP
    /// send (most sessions only ever use the socket, and stay smaller).
    ticket_guard: std::sync::OnceLock<TicketGuard>,
    /// Upload credentials, reused until they expire.
    pub(crate) upload_credentials: tokio::sync::Mutex<Option<crate::upload::UploadCredentials>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(f) = &self.frontier {
            f.close();
        }
    }
}

/// One logged-in TikTok account. Cheap to clone; the connection closes when the
/// last clone is dropped or [`Session::close`] is called.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("uid", &self.inner.identity.uid)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Session {
    /// Opens a session: reads the account's identity (unless configured) and, for
    /// the `auto` and `ws` transports, opens the frontier socket.
    ///
    /// # Errors
    /// [`Error::InvalidSession`] when TikTok does not accept the session;
    /// [`Error::Connect`] when TikTok cannot be reached (for `ws`, when the socket
    /// cannot be opened); [`Error::Discovery`] when the page cannot be read.
    pub async fn connect(config: Config) -> Result<Self> {
        let http = http::HttpTransport::new(&config)?;
        let identity = discover::identity(&http, &config).await?;
        let context = WebContext {
            device_id: identity.wid.clone(),
            region: config.region.clone(),
            user_agent: config.user_agent.clone(),
            language: config.language.clone(),
            tz_name: config.tz_name.clone(),
            verify_fp: config.credentials.cookie("s_v_web_id").map(str::to_owned),
            ms_token: config.credentials.cookie("msToken").map(str::to_owned),
        };
        let config = Arc::new(config);
        // A subscriber that falls more than 32 pushes behind loses the oldest
        // (RecvError::Lagged); a small buffer keeps idle sessions small.
        let (pushes, _) = broadcast::channel(32);
        let frontier = (config.transport != TransportMode::Http)
            .then(|| Frontier::start(Arc::clone(&config), identity.clone(), pushes.clone()));
        if let Some(f) = &frontier {
            let first = f
                .wait_for(|s| !matches!(s, ConnectionState::Connecting))
                .await;
            match first {
                ConnectionState::FatallyClosed { status } => {
                    return Err(Error::InvalidSession(format!(
                        "the WebSocket handshake was refused with HTTP {status}"
                    )));
                }
                ConnectionState::Disconnected { .. } if config.transport == TransportMode::Ws => {
                    f.close();
                    return Err(Error::Connect(
                        "the frontier WebSocket could not be opened".into(),
                    ));
                }
                _ => {}
            }
        }
        let headers = context.headers();
        Ok(Self {
            inner: Arc::new(Inner {
                request_headers: SplicedField::request_headers(&headers),
                frame_headers: SplicedField::frame_headers(&headers),
                ticket_guard: std::sync::OnceLock::new(),
                config,
                identity,
                http,
                frontier,
                next_seq: AtomicI64::new(cmd::FIRST_SEQUENCE_ID),
                pushes,
                upload_credentials: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Who this session is.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The frontier connection state (`None` for the `http` transport).
    pub fn connection_state(&self) -> Option<ConnectionState> {
        self.inner.frontier.as_ref().map(Frontier::state)
    }

    /// Waits until the frontier socket is active again (or can never be).
    pub async fn wait_until_connected(&self) -> Option<ConnectionState> {
        let f = self.inner.frontier.as_ref()?;
        Some(
            f.wait_for(|s| {
                matches!(
                    s,
                    ConnectionState::Active
                        | ConnectionState::FatallyClosed { .. }
                        | ConnectionState::Closed
                )
            })
            .await,
        )
    }

    /// Events pushed to this account, including the echo of its own sends,
    /// as they come (a slow reader loses the oldest: see [`Session::listen`]
    /// for a stream without gaps).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.pushes.subscribe()
    }

    /// A receiver of the frontier connection state (`None` for `http`).
    pub(crate) fn watch_state(&self) -> Option<tokio::sync::watch::Receiver<ConnectionState>> {
        self.inner.frontier.as_ref().map(Frontier::watch_state)
    }

    /// The configured transport.
    pub(crate) fn transport_mode(&self) -> TransportMode {
        self.inner.config.transport
    }

    /// A fresh client message id.
    pub fn new_client_message_id() -> ClientMessageId {
        ClientMessageId::from_random_bytes(rand::random())
    }

    /// Sends a text with a new client message id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or too long text; otherwise as
    /// [`Session::send_text_with_id`].
    pub async fn send_text(&self, target: &Target, text: &str) -> Result<Sent> {
        let text = MessageText::parse(text).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.send_text_with_id(target, &text, &Self::new_client_message_id())
            .await
    }

    /// Sends a text with a caller-chosen client message id. Call it again with the
    /// same id after an ambiguous failure, as TikTok's web client does, so the
    /// repeat can be recognised (the sandbox de-duplicates by it; whether
    /// TikTok does is open in the protocol notes).
    ///
    /// # Errors
    /// A typed [`Error`]; see [`Error::retry_class`].
    pub async fn send_text_with_id(
        &self,
        target: &Target,
        text: &MessageText,
        id: &ClientMessageId,
    ) -> Result<Sent> {
        self.send_content(target, MESSAGE_TYPE_TEXT, &text.content_json(), id)
            .await
    }

    /// Sends a message with a ready content JSON and message type.
    ///
    /// # Errors
    /// As [`Session::send_text_with_id`].
    pub async fn send_content(
        &self,
        target: &Target,
        message_type: i32,
        content: &str,
        id: &ClientMessageId,
    ) -> Result<Sent> {
        let request = send_message_request(self.send_params(target, content, message_type, id));
        self.send_request(&request, id).await
    }

    /// The envelope of a send to `target` with this session's identity and the
    /// next sequence id.
    pub(crate) fn send_params<'a>(
        &'a self,
        target: &'a Target,
        content: &'a str,
        message_type: i32,
        id: &'a ClientMessageId,
    ) -> SendParams<'a> {
        SendParams {
            conversation_id: &target.conversation_id,
            conversation_short_id: target.conversation_short_id,
            inbox_type: target.inbox_type,
            content,
            message_type,
            client_message_id: id,
            sequence_id: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            context_headers: Vec::new(),
            device_id: &self.inner.identity.wid,
        }
    }

    /// Transmits a built cmd-100 request and reads TikTok's verdict.
    pub(crate) async fn send_request(
        &self,
        request: &Request,
        id: &ClientMessageId,
    ) -> Result<Sent> {
        let (response, transport) = self.transmit(request).await?;
        let accepted = classify_send_response(&response)?;
        if accepted
            .client_message_id
            .as_deref()
            .is_some_and(|echo| echo != id.as_str())
        {
            return Err(Error::Protocol(
                "the answer is for another client message id".into(),
            ));
        }
        Ok(Sent {
            client_message_id: id.clone(),
            server_message_id: accepted.server_message_id,
            transport,
        })
    }

    /// Closes the frontier socket. Sends after this fail with [`Error::Closed`]
    /// (over `http` they still work).
    pub fn close(&self) {
        if let Some(f) = &self.inner.frontier {
            f.close();
        }
    }

    /// Sends `request` (built without context headers: they are spliced in).
    pub(crate) async fn transmit(&self, request: &Request) -> Result<(Response, Transport)> {
        let inner = &self.inner;
        let seq = request.sequence_id.unwrap_or_default();
        let command = request.cmd.unwrap_or_default();
        let payload = inner.request_headers.encode_into(request);
        match inner.config.transport {
            TransportMode::Http => Ok((self.over_http(command, payload).await?, Transport::Http)),
            TransportMode::Ws => Ok((self.over_ws(seq, &payload).await?, Transport::Ws)),
            TransportMode::Auto => {
                let ws_err = match self.over_ws(seq, &payload).await {
                    Ok(r) => return Ok((r, Transport::Ws)),
                    Err(e @ Error::InvalidSession(_)) => return Err(e),
                    Err(e) => e,
                };
                tracing::debug!(error = %ws_err, seq, "WebSocket attempts failed; falling back to HTTP");
                match self.over_http(command, payload).await {
                    Ok(r) => Ok((r, Transport::Http)),
                    // HTTP gave no answer at all, and the WebSocket may have
                    // delivered: the outcome stays unknown.
                    Err(http_err)
                        if ws_err.retry_class() == RetryClass::Ambiguous
                            && !matches!(http_err, Error::Rejected(_)) =>
                    {
                        tracing::debug!(error = %http_err, "HTTP fallback failed too");
                        Err(ws_err)
                    }
                    Err(http_err) => Err(http_err),
                }
            }
        }
    }

    /// Sends `request` over im-api, as TikTok web sends everything but the
    /// socket's own traffic, unless the transport is the socket alone.
    pub(crate) async fn transmit_http_first(&self, request: &Request) -> Result<Response> {
        match self.inner.config.transport {
            TransportMode::Ws => Ok(self.transmit(request).await?.0),
            TransportMode::Auto | TransportMode::Http => {
                let payload = self.inner.request_headers.encode_into(request);
                self.over_http(request.cmd.unwrap_or_default(), payload)
                    .await
            }
        }
    }

    /// One transmission over im-api; a send gets the ticket-guard entries
    /// after the context headers (PROTOCOL.md 2.1).
    async fn over_http(&self, command: i32, payload: Vec<u8>) -> Result<Response> {
        let inner = &self.inner;
        if command != cmd::SEND_MESSAGE {
            return inner.http.send(&inner.config, command, payload, None).await;
        }
        let guard = match inner.ticket_guard.get() {
            Some(g) => g,
            None => {
                // Two first sends at once may both draw a key; one is kept.
                let _ = inner.ticket_guard.set(TicketGuard::generate()?);
                inner
                    .ticket_guard
                    .get()
                    .ok_or_else(|| Error::Protocol("no ticket-guard key".into()))?
            }
        };
        let payload = guard.add_entries(payload);
        inner
            .http
            .send(&inner.config, command, payload, Some(guard))
            .await
    }

    /// Up to `ws_attempts` transmissions of the same request (same sequence id).
    async fn over_ws(&self, seq: i64, payload: &[u8]) -> Result<Response> {
        let inner = &self.inner;
        let frontier = inner.frontier.as_ref().ok_or(Error::Closed)?;
        let attempts = inner.config.ws_attempts.max(1);
        let mut maybe_delivered: Option<Error> = None;
        let mut last: Option<Error> = None;
        for attempt in 1..=attempts {
            let frame =
                inner
                    .frame_headers
                    .encode_into(&im_frame(payload, seq, now_ms(), Vec::new()));
            match tokio::time::timeout(inner.config.request_timeout, frontier.request(seq, frame))
                .await
            {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e @ (Error::InvalidSession(_) | Error::Closed))) => return Err(e),
                Ok(Err(e @ (Error::ConnectionLost(_) | Error::Protocol(_)))) => {
                    maybe_delivered = Some(e)
                }
                Ok(Err(e)) => {
                    // Could not connect: nothing was sent. The web client goes
                    // straight to HTTP when the socket is down.
                    let stop = inner.config.transport == TransportMode::Auto;
                    last = Some(e);
                    if stop {
                        break;
                    }
                }
                Err(_) => maybe_delivered = Some(Error::Timeout(inner.config.request_timeout)),
            }
            if attempt < attempts {
                tokio::time::sleep(retransmit_delay(attempt, rand::random_range(0..=100))).await;
            }
        }
        Err(maybe_delivered
            .or(last)
            .unwrap_or(Error::Timeout(Duration::ZERO)))
    }
}
