//! The HTTP API. Every route is a [`Route`]; the router and the OpenAPI
//! document are both built from [`Route::ALL`], so neither can miss one.

mod address;
mod admin;
mod auth;
mod conversations;
mod error;
pub mod events;
pub mod fuzzing;
mod input;
mod messages;
pub mod openapi;
mod openapi_inbound;
mod sender;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tiktok_dm_store::Store;

pub use error::{ApiError, ErrorCode};

use crate::metrics::{HttpLabels, RouteLabels};
use crate::state::AppState;

macro_rules! routes {
    ($($variant:ident = $method:ident $path:literal, $doc:literal;)*) => {
        /// Every operation the API serves.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Route {
            $(#[doc = $doc] $variant,)*
        }

        impl Route {
            /// Every route, in documentation order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// Its method.
            pub fn method(self) -> Method {
                match self { $(Self::$variant => Method::$method,)* }
            }

            /// Its path pattern (axum syntax, which is also OpenAPI's).
            pub fn path(self) -> &'static str {
                match self { $(Self::$variant => $path,)* }
            }

            /// One line on what it does.
            pub fn summary(self) -> &'static str {
                match self { $(Self::$variant => $doc,)* }
            }

            /// The OpenAPI operation id.
            pub fn operation_id(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant),)* }
            }
        }
    };
}

routes! {
    SendMessage = POST "/v1/messages", "Send a text, an image, or an image and its caption";
    GetMessage = GET "/v1/messages/{id}", "A send request's status and result";
    Usage = GET "/v1/usage", "The API key's usage totals and quota";
    ListEvents = GET "/v1/events", "Events of the key's accounts after a cursor (messages in and out, reads, typing, reactions, deletions, delivery outcomes), waiting up to `wait` seconds for one";
    ListConversations = GET "/v1/conversations", "A stored account's conversations (direct messages and message requests), with short ids and each one's newest message";
    ListConversationMessages = GET "/v1/conversations/{conversation_id}/messages", "One page of a conversation's history, newest first, as the stored account sees it";
    GetMedia = GET "/v1/media/{cursor}", "The image of a logged message.received event, fetched with its account's session and decrypted";
    CreateWebhook = POST "/v1/webhooks", "Create a webhook for the key's events; its signing secret is shown only in this answer";
    ListWebhooks = GET "/v1/webhooks", "The key's webhooks (never their secrets)";
    DeleteWebhook = DELETE "/v1/webhooks/{id}", "Delete one of the key's webhooks, with its queued deliveries";
    ReplayWebhook = POST "/v1/webhooks/{id}/replay", "Queue again, for one of the key's webhooks, the events it receives after a cursor";
    ListKeys = GET "/v1/admin/keys", "List API keys (never the keys themselves)";
    CreateKey = POST "/v1/admin/keys", "Create an API key; the answer is the only place it is shown";
    RevokeKey = DELETE "/v1/admin/keys/{name}", "Revoke an API key";
    ListAccounts = GET "/v1/admin/accounts", "List stored TikTok accounts (never their sessions)";
    PutAccount = PUT "/v1/admin/accounts/{name}", "Store or replace an account's session (encrypted at rest)";
    UpdateAccount = PATCH "/v1/admin/accounts/{name}", "Switch listening for a stored account's DMs on or off, without resending its session";
    RemoveAccount = DELETE "/v1/admin/accounts/{name}", "Remove a stored account";
    CheckAccount = POST "/v1/admin/accounts/{name}/check", "Ask TikTok whether a stored account's session is accepted now";
    ListGateways = GET "/v1/admin/gateways", "Live gateways sharing the database, with the lanes each holds and their outbox depth";
    Health = GET "/healthz", "Liveness: the process answers";
    Ready = GET "/readyz", "Readiness: the database answers; the outbox depth";
    Metrics = GET "/metrics", "Prometheus metrics";
    OpenApi = GET "/openapi.json", "This document";
}

fn handler<S: Store>(route: Route) -> MethodRouter<AppState<S>> {
    match route {
        Route::SendMessage => post(messages::post::<S>),
        Route::GetMessage => get(messages::get::<S>),
        Route::Usage => get(messages::usage::<S>),
        Route::ListEvents => get(events::list::<S>),
        Route::ListConversations => get(conversations::list::<S>),
        Route::ListConversationMessages => get(conversations::messages::<S>),
        Route::GetMedia => get(conversations::media::<S>),
        Route::CreateWebhook => post(webhooks::create::<S>),
        Route::ListWebhooks => get(webhooks::list::<S>),
        Route::DeleteWebhook => delete(webhooks::delete::<S>),
        Route::ReplayWebhook => post(webhooks::replay::<S>),
        Route::ListKeys => get(admin::list_keys::<S>),
        Route::CreateKey => post(admin::create_key::<S>),
        Route::RevokeKey => delete(admin::revoke_key::<S>),
        Route::ListAccounts => get(admin::list_accounts::<S>),
        Route::PutAccount => put(admin::put_account::<S>),
        Route::UpdateAccount => patch(admin::update_account::<S>),
        Route::RemoveAccount => delete(admin::remove_account::<S>),
        Route::CheckAccount => post(admin::check_account::<S>),
        Route::ListGateways => get(admin::list_gateways::<S>),
        Route::Health => get(|| async { "ok" }),
        Route::Ready => get(ready::<S>),
        Route::Metrics => get(metrics::<S>),
        Route::OpenApi => get(|| async { axum::Json(openapi::document()) }),
    }
}

/// `GET /readyz`: 200 when the database answers (with the outbox depth), 503
/// otherwise. Within a second of a count the count is shown again without
/// asking the database.
async fn ready<S: Store>(State(state): State<AppState<S>>) -> Response {
    match outbox_depth(&state).await {
        Ok(depth) => {
            axum::Json(serde_json::json!({"ready": true, "outbox_depth": depth})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"ready": false})),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`.
async fn metrics<S: Store>(State(state): State<AppState<S>>) -> Response {
    let depth = outbox_depth(&state).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: outbox depth unavailable");
        0
    });
    let webhooks = state
        .store
        .webhook_delivery_stats()
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: webhook deliveries unavailable");
            tiktok_dm_store::WebhookDeliveryStats::default()
        });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&crate::metrics::Gauges {
            outbox_depth: depth,
            sessions: state.pool.len() as u64,
            waiting: state.waiters.len() as u64,
            request_memory_bytes: state.body_room.held_bytes(),
            image_memory_bytes: state.image_room.held_bytes(),
            webhooks_pending: webhooks.pending,
            webhooks_in_flight: webhooks.in_flight,
        }),
    )
        .into_response()
}

/// The outbox depth, counted at most once a second however often it is asked.
async fn outbox_depth<S: Store>(state: &AppState<S>) -> Result<u64, tiktok_dm_store::Error> {
    let now = tokio::time::Instant::now();
    state.depth.get(now, || state.store.outbox_depth()).await
}

/// The method as a metrics label: HTTP's own methods by name, any other as
/// `other`, so that made-up methods cannot add time series without end.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Answers 408 past the request timeout (a send sets its own, which ends
/// before its acceptance), and counts and times every answer.
async fn observe<S: Store>(
    State(state): State<AppState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let started = tokio::time::Instant::now();
    let limit = state.settings.request_timeout;
    // A send keeps its own deadline: cut off here after its acceptance, it
    // would answer 408 for a message that goes out all the same.
    let is_send =
        route == Route::SendMessage.path() && request.method() == Route::SendMessage.method();
    let response = if is_send {
        next.run(request).await
    } else {
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the request took longer than {} s", limit.as_secs()),
            )
            .into_response(),
        }
    };
    let elapsed = started.elapsed();
    tracing::debug!(
        %method,
        route = %route,
        status = response.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        "http answer"
    );
    let m = &state.metrics;
    m.http_seconds
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    m.http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The largest request body: it follows the image limit (base64 is 4/3 of
/// the bytes, plus room for the rest of the JSON).
pub fn body_limit(settings: &crate::Settings) -> u64 {
    settings.image_limit.saturating_mul(4) / 3 + 64 * 1024
}

/// The router.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let body_limit = usize::try_from(body_limit(&state.settings)).unwrap_or(usize::MAX);
    let mut router = Router::new();
    for route in Route::ALL {
        // Routes sharing a path are merged by axum.
        router = router.route(route.path(), handler::<S>(*route));
    }
    // Unknown paths and methods answer in the API's own shape too.
    router
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take this method; GET /openapi.json lists the API",
            )
        })
        .fallback(|| async {
            ApiError::new(
                ErrorCode::NotFound,
                "no such endpoint; GET /openapi.json lists the API",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::<S>,
        ))
        .with_state(state)
}
