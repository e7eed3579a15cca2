//! The frontier WebSocket (`/ws/v2`, fpid 9): handshake checks, IM requests in
//! service-5 frames, `"hi"` heartbeats, pushes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::access_key::{TIKTOK_WEB_APP_KEY, access_key};
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::{ENCODING_LZ4, lz4};
use tiktok_dm_proto::schema::Frame;
use tokio::sync::mpsc;

use crate::faults::Fault;
use crate::http::{Addressed, session_account};
use crate::im::{Action, encode, handle, send_delay};
use crate::push::deliver;
use crate::seed::Account;
use crate::state::{Downlink, Outbound, Shared, Socket, Transport, log_id, now_ms};

fn refuse(status: StatusCode, reason: &str) -> HttpResponse {
    // What TikTok's frontier sends on a refused handshake is not documented;
    // the header names follow the Android wschannel client (PROTOCOL.md 1.4).
    let mut response = (status, reason.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert("Handshake-Status", HeaderValue::from(status.as_u16()));
    if let Ok(v) = HeaderValue::from_str(reason) {
        headers.insert("Handshake-Msg", v);
    }
    response
}

/// Why a handshake is refused: the status and the `Handshake-Msg`.
type Refusal = (StatusCode, &'static str);

/// Checks the handshake's subprotocol, cookie and query. On success returns
/// the account and the socket's downlink encoding.
fn check_handshake(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(Account, Downlink), Refusal> {
    // The working client offers no subprotocol at all; browsers offer
    // `binary, base64, pbbp2`. Offering some but not pbbp2 is refused.
    let offered: Vec<&str> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if !offered.is_empty() && !offered.contains(&"pbbp2") {
        return Err((
            StatusCode::BAD_REQUEST,
            "subprotocol pbbp2 is required when subprotocols are offered",
        ));
    }
    let fault = shared
        .lock()
        .faults
        .take(|f| matches!(f, Fault::RefuseHandshake | Fault::InvalidSession));
    match fault {
        Some(Fault::RefuseHandshake) => {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "frontier unavailable"));
        }
        Some(_) => return Err((StatusCode::UNAUTHORIZED, "invalid session")),
        None => {}
    }
    let Some(account) = session_account(shared, headers).cloned() else {
        return Err((StatusCode::UNAUTHORIZED, "invalid session"));
    };
    let param = |k: &str| query.get(k).map(String::as_str);
    if param("aid") != Some(&cmd::FRONTIER_AID.to_string()) {
        return Err((StatusCode::BAD_REQUEST, "aid=1459 is required"));
    }
    if param("device_platform") != Some("web") {
        return Err((StatusCode::BAD_REQUEST, "device_platform=web is required"));
    }
    // fpid 9 is the IM socket; another fpid (or none) is served the legacy way.
    let fpid = match param("fpid").map(str::parse::<u32>) {
        None => None,
        Some(Ok(fpid)) => Some(fpid),
        Some(Err(_)) => {
            return Err((StatusCode::BAD_REQUEST, "fpid must be a number"));
        }
    };
    let expected = access_key(
        fpid.unwrap_or(cmd::FPID_IM),
        TIKTOK_WEB_APP_KEY,
        account.wid.as_str(),
    );
    if param("access_key") != Some(expected.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "access_key does not match the session's device",
        ));
    }
    let downlink = if fpid == Some(cmd::FPID_IM) {
        Downlink::Lz4
    } else {
        Downlink::Legacy
    };
    Ok((account, downlink))
}

pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    // Upload credentials and media URLs name this sandbox as their host.
    addressed: Addressed,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> HttpResponse {
    let (account, downlink) = match check_handshake(&shared, &query, &headers) {
        Ok(checked) => checked,
        Err((status, reason)) => return refuse(status, reason),
    };
    let counter = {
        let mut state = shared.lock();
        state.handshakes += 1;
        state.handshakes
    };
    let socket = SocketContext {
        account,
        id: counter,
        addressed,
        downlink,
    };
    // `protocols` selects pbbp2 only when the client offered it.
    let mut response = ws
        .protocols(["pbbp2"])
        .on_upgrade(move |ws| serve_socket(shared, socket, ws));
    let h = response.headers_mut();
    h.insert(
        "Handshake-Options",
        HeaderValue::from_static("ping-interval=30"),
    );
    h.insert("Handshake-Status", HeaderValue::from_static("0"));
    if let Ok(v) = HeaderValue::from_str(&log_id(now_ms(), counter)) {
        h.insert("X-Frontier-Logid", v);
    }
    response
}

/// What a socket task knows about its socket.
struct SocketContext {
    account: Account,
    id: u64,
    /// The Host the handshake named, and its scheme.
    addressed: Addressed,
    downlink: Downlink,
}

fn reply_frame(request: &Frame, payload: Vec<u8>, downlink: Downlink) -> Vec<u8> {
    let (encoding, payload) = match downlink {
        Downlink::Lz4 => (Some(ENCODING_LZ4.into()), lz4(&payload)),
        Downlink::Legacy => (None, payload),
    };
    Frame {
        seqid: request.seqid,
        logid: Some(now_ms()),
        service: Some(cmd::SERVICE_IM),
        method: Some(cmd::METHOD_IM),
        payload_encoding: encoding,
        payload_type: Some("pb".into()),
        payload: Some(payload.into()),
        ..Frame::default()
    }
    .encode_to_vec()
}

/// How many queued outbound messages one write takes before flushing.
const WRITE_BATCH: usize = 64;

async fn serve_socket(shared: Arc<Shared>, socket: SocketContext, ws: WebSocket) {
    let (tx, rx) = mpsc::unbounded_channel();
    shared
        .lock()
        .sockets
        .entry(socket.account.uid)
        .or_default()
        .push(Socket {
            id: socket.id,
            tx: tx.clone(),
            downlink: socket.downlink,
        });
    let (sink, mut stream) = ws.split();
    tokio::spawn(write_loop(sink, rx));
    while let Some(Ok(message)) = stream.next().await {
        let keep_going = match message {
            WsMessage::Text(text) if text.as_str() == "hi" => {
                let muted = {
                    let mut state = shared.lock();
                    state.heartbeats += 1;
                    state.faults.take(|f| *f == Fault::MuteHeartbeats).is_some()
                };
                muted || tx.send(Outbound::Text("hi")).is_ok()
            }
            WsMessage::Binary(bytes) => {
                let payload = || Frame::decode(&bytes[..]).ok()?.payload;
                if let Some(delay) = send_delay(&shared, payload) {
                    tokio::time::sleep(delay).await;
                }
                on_binary(&shared, &socket, &bytes, &tx)
            }
            WsMessage::Close(_) => false,
            _ => true,
        };
        if !keep_going {
            break;
        }
    }
    if let Some(sockets) = shared.lock().sockets.get_mut(&socket.account.uid) {
        sockets.retain(|s| s.id != socket.id);
    }
}

/// Handles one binary frame; returns whether the socket stays open.
fn on_binary(
    shared: &Shared,
    socket: &SocketContext,
    bytes: &[u8],
    tx: &mpsc::UnboundedSender<Outbound>,
) -> bool {
    let Ok(frame) = Frame::decode(bytes) else {
        tracing::debug!("sandbox: dropping a frame that does not decode");
        return true;
    };
    if frame.service != Some(cmd::SERVICE_IM) || frame.payload_type.as_deref() != Some("pb") {
        // bsync subscribes and anything else: accepted and ignored.
        return true;
    }
    let payload = frame.payload.as_deref().unwrap_or_default();
    let (action, push) = handle(
        shared,
        &socket.account,
        payload,
        Transport::Ws,
        &socket.addressed,
        None,
    );
    let open = match action {
        Action::Reply(response) => tx
            .send(Outbound::Frame(reply_frame(
                &frame,
                encode(&response),
                socket.downlink,
            )))
            .is_ok(),
        Action::ReplyLater(delay, response) => {
            let tx = tx.clone();
            let bytes = reply_frame(&frame, encode(&response), socket.downlink);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Outbound::Frame(bytes));
            });
            true
        }
        Action::NoReply => true,
        Action::CloseSocket => {
            let _ = tx.send(Outbound::Close);
            false
        }
    };
    if let Some(push) = push {
        deliver(shared, &push);
    }
    open
}

/// Writes replies and pushes, flushing once per batch of queued messages.
async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        for outbound in batch {
            let message = match outbound {
                Outbound::Frame(bytes) => WsMessage::Binary(bytes.into()),
                Outbound::Text(text) => WsMessage::Text(text.into()),
                Outbound::Close => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    return;
                }
            };
            if sink.feed(message).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
