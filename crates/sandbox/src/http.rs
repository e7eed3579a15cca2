//! HTTP routes: the im-api protobuf routes, the `/messages` page with its
//! hydration data, and the `/_sandbox/*` inspection and fault endpoints.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response as HttpResponse};
use tiktok_dm_proto::cmd;

use crate::faults::{Fault, ScriptedFault};
use crate::im::{Action, encode, gateway_error, handle, send_delay};
use crate::push::deliver;
use crate::seed::Account;
use crate::state::{Shared, Transport};

/// The cookies that carry a TikTok login session.
const SESSION_COOKIES: [&str; 3] = ["sessionid", "sessionid_ss", "sid_tt"];

/// Marks every request of a sandbox served over TLS ([`crate::Sandbox::run_tls`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServedOverTls;

/// Where a request was addressed: the `host[:port]` its `Host` header named
/// (upload credentials name it) and whether the client reached it over TLS:
/// the sandbox's own ([`ServedOverTls`]) or a TLS proxy's in front of it, which
/// says `X-Forwarded-Proto: https`. Media URLs keep that scheme, as a client
/// may only speak HTTPS.
#[derive(Clone, Debug)]
pub(crate) struct Addressed {
    pub(crate) host: String,
    pub(crate) https: bool,
}

impl Addressed {
    pub(crate) fn from_parts(headers: &HeaderMap, extensions: &Extensions) -> Self {
        let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let proxied_https = value("x-forwarded-proto").is_some_and(|proto| {
            // A chain of proxies lists every hop; the first is the client's.
            let first = proto.split(',').next().unwrap_or_default().trim();
            first.eq_ignore_ascii_case("https") || first.eq_ignore_ascii_case("wss")
        });
        Self {
            host: value("host").unwrap_or("127.0.0.1").to_owned(),
            https: proxied_https || extensions.get::<ServedOverTls>().is_some(),
        }
    }

    /// `https` or `http`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Addressed {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(&parts.headers, &parts.extensions))
    }
}

/// The account whose session cookie is in `headers`, if any.
pub(crate) fn session_account<'a>(shared: &'a Shared, headers: &HeaderMap) -> Option<&'a Account> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| SESSION_COOKIES.contains(name))
        .find_map(|(_, value)| shared.account_by_session(value))
}

fn protobuf(bytes: Vec<u8>) -> HttpResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        bytes,
    )
        .into_response()
}

/// `POST /v1/message/send` and the other im-api routes: a session cookie is
/// required; the `aid=1988` query only on the send.
pub(crate) async fn im_route(
    State((shared, route_cmd)): State<(Arc<Shared>, i32)>,
    Query(query): Query<HashMap<String, String>>,
    addressed: Addressed,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-protobuf") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf",
        )
            .into_response();
    }
    let fault = shared
        .lock()
        .faults
        .take(|f| matches!(f, Fault::HttpStatus { .. }));
    if let Some(Fault::HttpStatus { status }) = fault {
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::BAD_GATEWAY)
            .into_response();
    }
    // The web client sends the context query on a send, and a bare send is
    // refused at the gateway, as OMNI saw (200001). Other routes are served
    // without one: the working client sends history with no query at all.
    if route_cmd == cmd::SEND_MESSAGE && query.get("aid").map(String::as_str) != Some("1988") {
        return protobuf(encode(&gateway_error(&shared, 200_001)));
    }
    let Some(account) = session_account(&shared, &headers).cloned() else {
        return protobuf(encode(&gateway_error(&shared, 200_005)));
    };
    if route_cmd == cmd::SEND_MESSAGE && shared.require_ticket_guard.load(Ordering::Relaxed) {
        let now = i64::try_from(crate::state::now_ms() / 1000).unwrap_or(i64::MAX);
        if let Err(problem) = crate::ticket_guard::check(&body, &query, &addressed.host, now) {
            let mut refusal = gateway_error(&shared, 200_001);
            refusal.error_desc = Some(format!("ticket guard: {problem}").into());
            return protobuf(encode(&refusal));
        }
    }
    if let Some(delay) = send_delay(&shared, || Some(&body[..])) {
        tokio::time::sleep(delay).await;
    }
    let (action, push) = handle(
        &shared,
        &account,
        &body,
        Transport::Http,
        &addressed,
        Some(route_cmd),
    );
    if let Some(push) = push {
        deliver(&shared, &push);
    }
    match action {
        Action::Reply(response) => protobuf(encode(&response)),
        Action::ReplyLater(delay, response) => {
            tokio::time::sleep(delay).await;
            protobuf(encode(&response))
        }
        // The reply is lost: hold the request until the client gives up.
        Action::NoReply | Action::CloseSocket => std::future::pending().await,
    }
}

/// CORS preflight for browsers calling im-api cross-origin.
pub(crate) async fn preflight() -> HttpResponse {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                "https://www.tiktok.com",
            ),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type, accept"),
            (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"),
        ],
    )
        .into_response()
}

/// `GET /messages`: the page, with `__UNIVERSAL_DATA_FOR_REHYDRATION__` carrying
/// `wid` and, when logged in, `user` (PROTOCOL.md 1.3).
pub(crate) async fn messages_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Html<String> {
    let account = session_account(&shared, &headers);
    let mut app_context = serde_json::json!({
        "language": "en",
        "region": "US",
        "appId": 1988,
        "wid": account.map_or_else(|| "7199999999999999999".to_owned(), |a| a.wid.to_string()),
        "webIdCreatedTime": "1786000000",
    });
    if let Some(a) = account {
        app_context["user"] = serde_json::json!({
            "uid": a.uid.to_string(),
            "secUid": format!("MS4wLjABAAAA-sandbox-{}", a.name),
            "uniqueId": a.unique_id,
            "nickName": a.name,
            "signature": "",
            "ftcUser": false,
        });
    }
    let data = serde_json::json!({
        "__DEFAULT_SCOPE__": {
            "webapp.app-context": app_context,
            "webapp.biz-context": {"domains": {"imApi": "/", "imFrontier": "/ws/v2"}},
        }
    });
    // `</` inside JSON would end the script element early.
    let json = data.to_string().replace("</", "<\\/");
    Html(format!(
        "<!DOCTYPE html><html><head><title>Messages | TikTok sandbox</title></head><body>\
         <script id=\"__UNIVERSAL_DATA_FOR_REHYDRATION__\" type=\"application/json\">{json}</script>\
         </body></html>"
    ))
}

/// `GET /_sandbox/messages`.
pub(crate) async fn list_messages(State(shared): State<Arc<Shared>>) -> HttpResponse {
    let messages: Vec<_> = shared
        .lock()
        .messages
        .iter()
        .map(|m| m.received.clone())
        .collect();
    Json(messages).into_response()
}

/// `GET /_sandbox/faults`.
pub(crate) async fn list_faults(State(shared): State<Arc<Shared>>) -> HttpResponse {
    Json(shared.lock().faults.list()).into_response()
}

/// `POST /_sandbox/faults` with one fault object or an array of them.
pub(crate) async fn add_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> HttpResponse {
    // One object or an array, told apart by the first character, so that
    // serde's error names the bad field or fault (an untagged enum would only
    // say that neither form matched).
    let parsed = if body.trim_ascii_start().first() == Some(&b'[') {
        serde_json::from_slice::<Vec<ScriptedFault>>(&body)
    } else {
        serde_json::from_slice::<ScriptedFault>(&body).map(|f| vec![f])
    };
    let faults = match parsed {
        Ok(faults) => faults,
        Err(e) => {
            let message = format!(
                "invalid fault: {e}; expected e.g. {{\"fault\":\"drop_acks\",\"times\":1}}"
            );
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": message })),
            )
                .into_response();
        }
    };
    let unknown = faults.iter().find_map(|f| match &f.fault {
        Fault::DropPushes { account } if shared.account_named(account).is_none() => Some(account),
        _ => None,
    });
    if let Some(account) = unknown {
        let message = format!("invalid fault: no seeded account is named {account:?}");
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": message })),
        )
            .into_response();
    }
    let mut state = shared.lock();
    for f in faults {
        state.faults.add(f);
    }
    (StatusCode::CREATED, Json(state.faults.list())).into_response()
}

/// `DELETE /_sandbox/faults`.
pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().faults.clear();
    StatusCode::NO_CONTENT
}

/// `GET /_sandbox/seed`.
pub(crate) async fn seed(State(shared): State<Arc<Shared>>) -> HttpResponse {
    Json(shared.seed.clone()).into_response()
}
