//! The frontier WebSocket (`/ws/v2`, fpid 9): handshake checks, IM requests in
//! service-5 frames, `"hi"` heartbeats, pushes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::{SinkExt, StreamExt};
use tiktok_dm_proto::Message;
use tiktok_dm_proto::access_key::{TIKTOK_WEB_APP_KEY, access_key};
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::schema::Frame;
use tokio::sync::mpsc;

use crate::faults::Fault;
use crate::http::session_account;
use crate::im::{Action, encode, handle};
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
    let counter = {
        let mut state = shared.lock();
        state.handshakes += 1;
        state.handshakes
    };
    let mut response = ws
        .protocols(["pbbp2"])
        .on_upgrade(move |socket| serve_socket(shared, account, socket, counter));
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

async fn serve_socket(shared: Arc<Shared>, account: Account, socket: WebSocket, socket_id: u64) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared
        .lock()
        .sockets
        .entry(account.uid)
        .or_default()
        .push((socket_id, tx.clone()));
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            outbound = rx.recv() => {
                let Some(Outbound::Frame(bytes)) = outbound else { break };
                if sink.send(WsMessage::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            inbound = stream.next() => {
                let Some(Ok(message)) = inbound else { break };
                match message {
                    WsMessage::Text(text) if text.as_str() == "hi" => {
                        let muted = {
                            let mut state = shared.lock();
                            state.heartbeats += 1;
                            state.faults.take(|f| *f == Fault::MuteHeartbeats).is_some()
                        };
                        if !muted && sink.send(WsMessage::Text("hi".into())).await.is_err() {
                            break;
                        }
                    }
                    WsMessage::Binary(bytes) => {
                        let Ok(frame) = Frame::decode(&bytes) else {
                            tracing::debug!("sandbox: dropping a frame that does not decode");
                            continue;
                        };
                        if frame.service != Some(cmd::SERVICE_IM) || frame.payload_type.as_deref() != Some("pb") {
                            // bsync subscribes and anything else: accepted and ignored.
                            continue;
                        }
                        let payload = frame.payload.as_deref().unwrap_or_default();
                        match handle(&shared, &account, payload, Transport::Ws) {
                            Action::Reply(response) => {
                                if sink.send(WsMessage::Binary(reply_frame(&frame, encode(&response)).into())).await.is_err() {
                                    break;
                                }
                            }
                            Action::ReplyLater(delay, response) => {
                                let tx = tx.clone();
                                let bytes = reply_frame(&frame, encode(&response));
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    let _ = tx.send(Outbound::Frame(bytes));
                                });
                            }
                            Action::NoReply => {}
                            Action::CloseSocket => {
                                let _ = sink.send(WsMessage::Close(None)).await;
                                break;
                            }
                        }
                    }
                    WsMessage::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
    if let Some(sockets) = shared.lock().sockets.get_mut(&account.uid) {
        sockets.retain(|(id, _)| *id != socket_id);
    }
}
