//! The frontier WebSocket (fpid 9). One task per session owns the socket: it
//! writes request frames, matches replies to waiting requests by `sequence_id`,
//! hands pushes to subscribers, sends `"hi"` heartbeats, and reconnects with
//! capped, jittered backoff. It never retransmits a request on its own: a request
//! in flight when the socket drops fails with a retryable error, and the caller
//! decides (with the same sequence id and client message id). A request made
//! while the socket waits to reconnect fails at once (nothing was sent) rather
//! than cutting the wait short, and a request whose caller stopped waiting is
//! forgotten at the next heartbeat tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tiktok_dm_proto::Message;
use tiktok_dm_proto::access_key::access_key;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::frame_response;
use tiktok_dm_proto::events::{Event, events_from_response};
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{Frame, Response};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::backoff::reconnect_delay;
use crate::config::Config;
use crate::discover::Identity;
use crate::error::{Error, Result};
use crate::heartbeat::{Beat, beat};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The socket's write half, owned by the connection task.
type Sink = SplitSink<Socket, WsMessage>;

/// A request waiting to be written: its sequence id, frame and waiter.
type Queued = (i64, Vec<u8>, oneshot::Sender<Result<Response>>);

/// Largest WebSocket message accepted (matches the inflated-payload cap).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many queued requests one write batch takes before flushing.
const WRITE_BATCH: usize = 64;

/// The frontier connection's state, published to the session's owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Not connected; `attempt` reconnects have failed in a row.
    Disconnected {
        /// Failed attempts so far.
        attempt: u32,
    },
    /// Opening the socket.
    Connecting,
    /// Connected.
    Active,
    /// The server refused the session; no further attempts are made.
    FatallyClosed {
        /// The handshake's HTTP status.
        status: u16,
    },
    /// Closed by the owner.
    Closed,
}

enum Command {
    Request {
        seq: i64,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<Response>>,
    },
    Close,
}

/// Handle to the connection task.
pub(crate) struct Frontier {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    /// How many requests wait for a reply, as the task last counted.
    #[cfg(test)]
    pending: Arc<AtomicUsize>,
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
/// The web SDK does not encode values; we do, because a `|` in `ttwid` is not a
/// valid URI character for our HTTP stack.
pub(crate) fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The fpid-9 socket URL (PROTOCOL.md 1.1-1.3).
pub(crate) fn socket_url(config: &Config, identity: &Identity) -> String {
    let key = access_key(cmd::FPID_IM, &config.app_key, identity.wid.as_str());
    let mut url = format!(
        "{}?aid={}&fpid={}&access_key={key}&device_platform=web",
        config.endpoints.ws_url,
        cmd::FRONTIER_AID,
        cmd::FPID_IM
    );
    for (param, cookie) in [("ttwid", "ttwid"), ("Web-Sdk-Ms-Token", "msToken")] {
        if let Some(v) = config.credentials.cookie(cookie) {
            url.push_str(&format!("&{param}={}", query_escape(v)));
        }
    }
    url
}

impl Frontier {
    pub(crate) fn start(
        config: Arc<Config>,
        identity: Identity,
        pushes: broadcast::Sender<Event>,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let pending = Arc::new(AtomicUsize::new(0));
        let task = Task {
            config,
            identity,
            pushes,
            state: state_tx,
            pending: Arc::clone(&pending),
        };
        tokio::spawn(run(task, rx));
        Self {
            commands,
            state,
            #[cfg(test)]
            pending,
        }
    }

    /// How many requests the task holds waiting for a reply.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Writes one request frame and waits for the reply with the same sequence id.
    /// The caller applies the timeout.
    pub(crate) async fn request(&self, seq: i64, frame: Vec<u8>) -> Result<Response> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request { seq, frame, reply })
            .map_err(|_| Error::Closed)?;
        rx.await
            .unwrap_or_else(|_| Err(Error::ConnectionLost("the connection task ended".into())))
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// A receiver of the connection state's changes.
    pub(crate) fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Waits until the state satisfies `ready`.
    pub(crate) async fn wait_for(
        &self,
        ready: impl Fn(&ConnectionState) -> bool,
    ) -> ConnectionState {
        let mut rx = self.state.clone();
        match rx.wait_for(|s| ready(s)).await {
            Ok(s) => s.clone(),
            Err(_) => ConnectionState::Closed,
        }
    }

    pub(crate) fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

async fn connect(config: &Config, identity: &Identity) -> Result<Socket> {
    let url = socket_url(config, identity);
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::InvalidInput(format!("invalid WebSocket URL: {e}")))?;
    let headers = request.headers_mut();
    let header = |v: &str| http::HeaderValue::from_str(v);
    let cookie = header(&config.credentials.cookie_header()).map_err(|_| {
        Error::InvalidCredentials("the cookies contain characters not allowed in a header".into())
    })?;
    let mut cookie = cookie;
    cookie.set_sensitive(true);
    headers.insert(http::header::COOKIE, cookie);
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("binary, base64, pbbp2"),
    );
    headers.insert(
        http::header::ORIGIN,
        http::HeaderValue::from_static("https://www.tiktok.com"),
    );
    if let Ok(ua) = header(&config.user_agent) {
        headers.insert(http::header::USER_AGENT, ua);
    }
    // Small buffers: frames are a few KiB, and an idle session should cost
    // little memory (tungstenite's defaults are 128 KiB each).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connector = Connector::Rustls(crate::http::tls_config());
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config),
        true,
        Some(connector),
    );
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Err(_) => Err(Error::Connect(format!(
            "WebSocket handshake timed out after {}s",
            config.connect_timeout.as_secs()
        ))),
        Ok(Err(tungstenite::Error::Http(response))) => Err(Error::HandshakeRefused {
            status: response.status().as_u16(),
        }),
        Ok(Err(e)) => Err(Error::Connect(e.to_string())),
        Ok(Ok((socket, response))) => {
            let selected = response.headers().get(http::header::SEC_WEBSOCKET_PROTOCOL);
            if selected.and_then(|v| v.to_str().ok()) != Some("pbbp2") {
                return Err(Error::Protocol(
                    "the server did not select the pbbp2 subprotocol".into(),
                ));
            }
            Ok(socket)
        }
    }
}

fn fatal_status(err: &Error) -> Option<u16> {
    match err {
        Error::HandshakeRefused {
            status: status @ (401 | 403),
        } => Some(*status),
        _ => None,
    }
}

fn fatal_error(status: u16) -> Error {
    Error::InvalidSession(format!(
        "the WebSocket handshake was refused with HTTP {status}"
    ))
}

fn jitter() -> f64 {
    0.5 + rand::random::<f64>() / 2.0
}

/// What the connection task owns besides its command queue.
struct Task {
    config: Arc<Config>,
    identity: Identity,
    pushes: broadcast::Sender<Event>,
    state: watch::Sender<ConnectionState>,
    /// Published count of requests waiting for a reply.
    pending: Arc<AtomicUsize>,
}

async fn run(task: Task, mut commands: mpsc::UnboundedReceiver<Command>) {
    let state = &task.state;
    let mut attempt = 0u32;
    let mut reconnect_at = Instant::now();
    loop {
        // Wait for the reconnect time; a request that comes sooner fails at
        // once instead of cutting the backoff short.
        let Some(waiting) = wait_to_reconnect(reconnect_at, &mut commands).await else {
            break;
        };
        state.send_replace(ConnectionState::Connecting);
        match connect(&task.config, &task.identity).await {
            Ok(socket) => {
                // Connected: the failure count starts again from the next loss.
                state.send_replace(ConnectionState::Active);
                tracing::debug!("frontier connected");
                match serve(&task, socket, waiting, &mut commands).await {
                    Ended::ByOwner => break,
                    Ended::Lost(reason) => {
                        tracing::debug!(%reason, "frontier connection lost");
                        attempt = 1;
                        state.send_replace(ConnectionState::Disconnected { attempt });
                        reconnect_at = Instant::now() + reconnect_delay(attempt, jitter());
                    }
                }
            }
            Err(err) => {
                if let Some(status) = fatal_status(&err) {
                    state.send_replace(ConnectionState::FatallyClosed { status });
                    if let Some((_, _, reply)) = waiting {
                        let _ = reply.send(Err(fatal_error(status)));
                    }
                    refuse_all(&mut commands, status).await;
                    break;
                }
                tracing::debug!(error = %err, "frontier connect failed");
                attempt = attempt.saturating_add(1);
                state.send_replace(ConnectionState::Disconnected { attempt });
                reconnect_at = Instant::now() + reconnect_delay(attempt, jitter());
                if let Some((_, _, reply)) = waiting {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
    if !matches!(*state.borrow(), ConnectionState::FatallyClosed { .. }) {
        state.send_replace(ConnectionState::Closed);
    }
}

/// Waits until `reconnect_at`. A request that comes before then is answered
/// at once as not connected (nothing was sent; the caller may go over HTTP
/// or try later): connecting for it would skip the backoff, and a stream of
/// requests would hammer a server that is down. One that comes when the time
/// is up goes first on the new connection. `None` when the owner closed.
async fn wait_to_reconnect(
    reconnect_at: Instant,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<Option<Queued>> {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(reconnect_at) => return Some(None),
            command = commands.recv() => match command {
                None | Some(Command::Close) => return None,
                Some(Command::Request { seq, frame, reply }) => {
                    let now = Instant::now();
                    if now >= reconnect_at {
                        return Some(Some((seq, frame, reply)));
                    }
                    let _ = reply.send(Err(Error::Connect(format!(
                        "the frontier socket is down; the next connection attempt is in {} ms",
                        (reconnect_at - now).as_millis()
                    ))));
                }
            },
        }
    }
}

/// After a fatal refusal, answer every request with the same error until closed.
async fn refuse_all(commands: &mut mpsc::UnboundedReceiver<Command>, status: u16) {
    while let Some(Command::Request { reply, .. }) = commands.recv().await {
        let _ = reply.send(Err(fatal_error(status)));
    }
}

enum Ended {
    ByOwner,
    Lost(String),
}

type Pending = HashMap<i64, oneshot::Sender<Result<Response>>>;

async fn serve(
    task: &Task,
    socket: Socket,
    first: Option<Queued>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Ended {
    let (config, pushes) = (&task.config, &task.pushes);
    let (mut sink, mut stream) = socket.split();
    let mut pending: Pending = HashMap::new();
    let mut last_receive = Instant::now();
    let mut ticker = heartbeat_ticker(config.heartbeat_interval);
    if let Some((seq, frame, reply)) = first {
        if let Err(e) = sink.send(WsMessage::Binary(frame.into())).await {
            let _ = reply.send(Err(Error::ConnectionLost(e.to_string())));
            return Ended::Lost(e.to_string());
        }
        pending.insert(seq, reply);
    }
    let reason = loop {
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Close) => return close_by_owner(&mut sink, &mut pending).await,
                Some(Command::Request { seq, frame, reply }) => {
                    let batch = take_batch((seq, frame, reply), commands);
                    if let Some(e) = write_batch(&mut sink, &mut pending, batch.requests).await {
                        break e;
                    }
                    if batch.closing {
                        return close_by_owner(&mut sink, &mut pending).await;
                    }
                }
            },
            inbound = stream.next() => {
                if let Some(reason) = receive(inbound, &mut last_receive, &mut pending, (task.identity.uid, pushes)) {
                    break reason;
                }
            },
            _ = ticker.tick() => {
                forget_abandoned(&mut pending);
                if let Some(reason) = heartbeat(&mut sink, last_receive, config).await {
                    break reason;
                }
            },
        }
        task.pending.store(pending.len(), Ordering::Relaxed);
    };
    fail_all(&mut pending, || Error::ConnectionLost(reason.clone()));
    task.pending.store(0, Ordering::Relaxed);
    Ended::Lost(reason)
}

/// Drops the waiters whose caller stopped waiting (its timeout passed): a
/// reply that never comes would otherwise keep them until the socket drops.
fn forget_abandoned(pending: &mut Pending) {
    pending.retain(|_, reply| !reply.is_closed());
}

/// The heartbeat timer: its first tick one interval from now, and a late tick
/// delays the next rather than bunching up.
fn heartbeat_ticker(interval: std::time::Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Requests taken from the queue for one write.
struct Batch {
    /// The requests, in queue order.
    requests: Vec<Queued>,
    /// The owner asked to close right after them.
    closing: bool,
}

/// Takes `first` and the requests already queued behind it, up to
/// [`WRITE_BATCH`], stopping at a close or an empty queue.
fn take_batch(first: Queued, commands: &mut mpsc::UnboundedReceiver<Command>) -> Batch {
    // Queue this frame and any others already waiting, then flush once: many
    // sends in flight share one write.
    let mut requests = vec![first];
    let mut closing = false;
    while requests.len() < WRITE_BATCH {
        match commands.try_recv() {
            Ok(Command::Request { seq, frame, reply }) => requests.push((seq, frame, reply)),
            Ok(Command::Close) => {
                closing = true;
                break;
            }
            Err(_) => break,
        }
    }
    Batch { requests, closing }
}

/// Feeds each request's frame to the socket and flushes once. A request whose
/// frame was fed waits in `pending`; once a write fails, the rest are answered
/// with that error. Returns the write error, if any.
async fn write_batch(
    sink: &mut Sink,
    pending: &mut Pending,
    requests: Vec<Queued>,
) -> Option<String> {
    let mut failed = None;
    for (seq, frame, reply) in requests {
        if failed.is_none() {
            if let Err(e) = sink.feed(WsMessage::Binary(frame.into())).await {
                failed = Some(e.to_string());
            }
        }
        match &failed {
            None => {
                // A retransmission replaces the earlier waiter for the same id.
                pending.insert(seq, reply);
            }
            Some(e) => {
                let _ = reply.send(Err(Error::ConnectionLost(e.clone())));
            }
        }
    }
    if failed.is_none() {
        if let Err(e) = sink.flush().await {
            failed = Some(e.to_string());
        }
    }
    failed
}

/// Who pushes are for (their echoes are outbound) and where they go.
type Publish<'a> = (Uid, &'a broadcast::Sender<Event>);

/// Handles one read from the socket: any message resets the idle timer, a
/// binary one is dispatched. Returns why the connection is lost, if it is.
fn receive(
    inbound: Option<std::result::Result<WsMessage, tungstenite::Error>>,
    last_receive: &mut Instant,
    pending: &mut Pending,
    pushes: Publish<'_>,
) -> Option<String> {
    match inbound {
        None => Some("the server closed the connection".to_owned()),
        Some(Err(e)) => Some(e.to_string()),
        Some(Ok(message)) => {
            *last_receive = Instant::now();
            match message {
                WsMessage::Binary(bytes) => dispatch(&bytes, pending, pushes),
                WsMessage::Close(_) => return Some("the server closed the connection".to_owned()),
                // "hi" and pings only reset the idle timer.
                _ => {}
            }
            None
        }
    }
}

/// Acts on one heartbeat tick: nothing, a `"hi"`, or giving up on a silent
/// server. Returns why the connection is lost, if it is.
async fn heartbeat(sink: &mut Sink, last_receive: Instant, config: &Config) -> Option<String> {
    match beat(
        last_receive.elapsed(),
        config.heartbeat_interval,
        config.max_idle,
    ) {
        Beat::Quiet => None,
        Beat::SendHi => sink
            .send(WsMessage::Text("hi".into()))
            .await
            .err()
            .map(|e| e.to_string()),
        Beat::Reconnect => Some("nothing received within the idle window".to_owned()),
    }
}

/// Ends the connection at the owner's request: a close frame, then every
/// waiting request fails as closed.
async fn close_by_owner(sink: &mut Sink, pending: &mut Pending) -> Ended {
    let _ = sink.send(WsMessage::Close(None)).await;
    fail_all(pending, || Error::Closed);
    Ended::ByOwner
}

fn fail_all(pending: &mut Pending, err: impl Fn() -> Error) {
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(err()));
    }
}

/// Routes one inbound frame: a reply to its waiter, a push to subscribers.
fn dispatch(bytes: &[u8], pending: &mut Pending, pushes: Publish<'_>) {
    let Ok(frame) = Frame::decode(bytes) else {
        tracing::debug!("dropping an inbound frame that does not decode");
        return;
    };
    let response = match frame.service {
        Some(cmd::SERVICE_IM) | Some(cmd::SERVICE_BSYNC_PUSH) => match frame_response(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "dropping an inbound payload that does not decode");
                return;
            }
        },
        _ => return,
    };
    match response.sequence_id.unwrap_or_default() {
        0 => publish(&response, pushes.0, pushes.1),
        seq => {
            if let Some(reply) = pending.remove(&seq) {
                let _ = reply.send(Ok(response));
            }
        }
    }
}

fn publish(response: &Response, own: Uid, pushes: &broadcast::Sender<Event>) {
    // Nobody listening (a gateway that only sends): nothing to build.
    if pushes.receiver_count() == 0 {
        return;
    }
    for event in events_from_response(response, Some(own)) {
        let _ = pushes.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tiktok_dm_proto::codec::{im_frame, media_upload_config_request};
    use tiktok_dm_test_support::spawn_sandbox;

    use super::*;
    use crate::{Credentials, Endpoints};

    #[tokio::test]
    async fn a_request_whose_caller_stopped_waiting_is_forgotten_at_the_next_tick() {
        let sandbox = spawn_sandbox().await;
        let alice = sandbox.handle.account("alice").unwrap().clone();
        let config = Config::builder(Credentials::parse(&alice.session).unwrap())
            .endpoints(Endpoints::sandbox(&sandbox.base_url()).unwrap())
            .heartbeat(Duration::from_millis(50), Duration::from_secs(60))
            .build()
            .unwrap();
        let identity = Identity {
            uid: alice.uid,
            wid: alice.wid.clone(),
            unique_id: None,
        };
        let (pushes, _) = broadcast::channel(4);
        let frontier = Frontier::start(Arc::new(config), identity, pushes);
        frontier.wait_for(|s| *s == ConnectionState::Active).await;
        sandbox.handle.ws_unanswered(3);
        for seq in 1..=3 {
            let request = media_upload_config_request(seq, &alice.wid).encode_to_vec();
            let frame = im_frame(&request, seq, 0, Vec::new()).encode_to_vec();
            let waited =
                tokio::time::timeout(Duration::from_millis(100), frontier.request(seq, frame))
                    .await;
            assert!(waited.is_err(), "the sandbox leaves it unanswered");
        }
        // Ticks come every 50 ms; the bound only keeps a failure from hanging.
        let give_up = Instant::now() + Duration::from_secs(10);
        while frontier.pending_len() > 0 && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(frontier.pending_len(), 0, "abandoned requests are kept");
        assert_eq!(frontier.state(), ConnectionState::Active, "on one socket");
    }
}
