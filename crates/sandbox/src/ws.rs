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
use tiktok_dm_proto::schema::Frame;
use tokio::sync::mpsc;

use crate::faults::Fault;
use crate::http::session_account;
use crate::im::{Action, encode, handle};
use crate::push::deliver;
use crate::seed::Account;
use crate::state::{Outbound, Shared, Transport, log_id, now_ms};

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

pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> HttpResponse {
    let offered = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !offered.split(',').any(|p| p.trim() == "pbbp2") {
        return refuse(StatusCode::BAD_REQUEST, "subprotocol pbbp2 is required");
    }
    let fault = shared
        .lock()
        .faults
        .take(|f| matches!(f, Fault::RefuseHandshake | Fault::InvalidSession));
    match fault {
        Some(Fault::RefuseHandshake) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "frontier unavailable");
        }
        Some(_) => return refuse(StatusCode::UNAUTHORIZED, "invalid session"),
        None => {}
    }
    let Some(account) = session_account(&shared, &headers).cloned() else {
        return refuse(StatusCode::UNAUTHORIZED, "invalid session");
    };
    let param = |k: &str| query.get(k).map(String::as_str);
    if param("fpid") != Some("9") || param("aid") != Some(&cmd::FRONTIER_AID.to_string()) {
        return refuse(StatusCode::BAD_REQUEST, "fpid=9 and aid=1459 are required");
    }
    if param("device_platform") != Some("web") {
        return refuse(StatusCode::BAD_REQUEST, "device_platform=web is required");
    }
    let expected = access_key(cmd::FPID_IM, TIKTOK_WEB_APP_KEY, account.wid.as_str());
    if param("access_key") != Some(expected.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "access_key does not match the session's device",
        );
    }
    // Upload credentials name this sandbox as the upload API host.
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base_url = format!("http://{host}");
    let counter = {
        let mut state = shared.lock();
        state.handshakes += 1;
        state.handshakes
    };
    let mut response = ws
        .protocols(["pbbp2"])
        .on_upgrade(move |socket| serve_socket(shared, account, socket, counter, base_url));
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

fn reply_frame(request: &Frame, payload: Vec<u8>) -> Vec<u8> {
    Frame {
        seqid: request.seqid,
        logid: Some(now_ms()),
        service: Some(cmd::SERVICE_IM),
        method: Some(cmd::METHOD_IM),
        payload_type: Some("pb".into()),
        payload: Some(payload.into()),
        ..Frame::default()
    }
    .encode_to_vec()
}

/// How many queued outbound messages one write takes before flushing.
const WRITE_BATCH: usize = 64;

async fn serve_socket(
    shared: Arc<Shared>,
    account: Account,
    socket: WebSocket,
    socket_id: u64,
    base_url: String,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    shared
        .lock()
        .sockets
        .entry(account.uid)
        .or_default()
        .push((socket_id, tx.clone()));
    let (sink, mut stream) = socket.split();
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
            WsMessage::Binary(bytes) => on_binary(&shared, &account, &bytes, &tx, &base_url),
            WsMessage::Close(_) => false,
            _ => true,
        };
        if !keep_going {
            break;
        }
    }
    if let Some(sockets) = shared.lock().sockets.get_mut(&account.uid) {
        sockets.retain(|(id, _)| *id != socket_id);
    }
}

/// Handles one binary frame; returns whether the socket stays open.
fn on_binary(
    shared: &Shared,
    account: &Account,
    bytes: &[u8],
    tx: &mpsc::UnboundedSender<Outbound>,
    base_url: &str,
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
    let (action, push) = handle(shared, account, payload, Transport::Ws, base_url, None);
    let open = match action {
        Action::Reply(response) => tx
            .send(Outbound::Frame(reply_frame(&frame, encode(&response))))
            .is_ok(),
        Action::ReplyLater(delay, response) => {
            let tx = tx.clone();
            let bytes = reply_frame(&frame, encode(&response));
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
