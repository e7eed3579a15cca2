//! `GET /openapi.json`: the OpenAPI 3.1 document, built from [`Route::ALL`] and
//! [`ErrorCode::ALL`] so a route or an error code cannot go undocumented. The
//! schemas are written out here; the API tests check real answers against them.

use serde_json::{Value, json};

use super::{ErrorCode, Route};

/// The whitespace Rust's `str::trim` removes that a JSON Schema (ECMA-262)
/// pattern can name portably. The gateway trims ids and tests text for blankness.
const SPACE: &str = "[ \\t\\n\\v\\f\\r]*";

/// A string with something besides whitespace.
const NOT_BLANK: &str = "[^ \\t\\n\\v\\f\\r]";

/// A string that is blank (a left-out id): every character Rust's
/// `str::trim` removes is ECMA-262 `\s` or U+0085.
const BLANK: &str = "^[\\s\\u0085]*$";

/// A 64-bit id in JSON: a decimal string, a number, or left out as null or
/// blank.
fn json_id() -> Value {
    json!([
        {"type": "string", "pattern": short_id_pattern()},
        {"type": "integer", "minimum": 1, "maximum": i64::MAX},
        {"type": "string", "pattern": BLANK},
        {"type": "null"}
    ])
}

/// A string without U+0000, which the gateway does not store.
const NO_NUL: &str = "^[^\\u0000]*$";

/// What `ConversationId::parse` accepts: the 1:1 form or a numeric group id,
/// each part a decimal that fits in a u64 (leading zeros allowed).
fn conversation_id_pattern() -> String {
    let part = format!("(?:0+|0*(?:{}))", decimal_up_to(&u64::MAX.to_string()));
    format!("^{SPACE}({part}|{part}:{part}:{part}:{part}){SPACE}$")
}

/// What `ConversationShortId::parse` accepts: a decimal from 1 to `i64::MAX`,
/// leading zeros allowed.
fn short_id_pattern() -> String {
    format!(
        "^{SPACE}0*({}){SPACE}$",
        decimal_up_to(&i64::MAX.to_string())
    )
}

/// A regular expression for the decimals from 1 to `max` (digits only, no
/// leading zero): every shorter number, then for each digit of `max` the
/// numbers that share its prefix and are smaller there, then `max` itself.
fn decimal_up_to(max: &str) -> String {
    let digits: Vec<u8> = max.bytes().map(|b| b - b'0').collect();
    let n = digits.len();
    let mut alternatives = Vec::new();
    if n > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    for (i, &d) in digits.iter().enumerate() {
        let lowest = u8::from(i == 0);
        if d > lowest {
            let prefix = &max[..i];
            let rest = n - 1 - i;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            alternatives.push(format!("{prefix}[{lowest}-{}]{tail}", d - 1));
        }
    }
    alternatives.push(max.to_owned());
    alternatives.join("|")
}

fn error_codes() -> Value {
    Value::Array(
        ErrorCode::ALL
            .iter()
            .map(|c| json!({"code": c.as_str(), "status": c.status().as_u16(), "meaning": c.meaning()}))
            .collect(),
    )
}

/// The schemas under `components`, group by group, in the document's order.
fn schemas() -> Value {
    let mut all = serde_json::Map::new();
    for group in [
        send_schemas(),
        accounting_schemas(),
        answer_schemas(),
        admin_schemas(),
        webhook_schemas(),
        super::openapi_inbound::schemas(),
    ] {
        // Every group is a `json!` object literal.
        if let Value::Object(group) = group {
            all.extend(group);
        }
    }
    Value::Object(all)
}

/// What `POST /v1/messages` takes: a JSON body or form fields.
fn send_schemas() -> Value {
    json!({
        "SendRequest": {
            "type": "object",
            "additionalProperties": false,
            "description": "Where: `conversation_id` and `conversation_short_id`; or `conversation_id` alone (the short id is found from the sending account's inbox); or `to_uid` alone (the 1:1 conversation with that user). A conversation the inbox does not have is `conversation_not_found`.",
            "allOf": [
                {"anyOf": [
                    {"required": ["image"], "properties": {"image": {"type": "object"}}},
                    {"required": ["text"], "properties": {"text": {"type": "string", "pattern": NOT_BLANK}}}
                ]},
                {"anyOf": [{"required": ["conversation_id"]}, {"required": ["to_uid"]}]}
            ],
            "properties": {
                "conversation_id": {"type": "string", "pattern": conversation_id_pattern(), "examples": ["0:1:7000000000000000001:7000000000000000002"], "description": "`<inbox>:<type>:<uid>:<uid>` for a 1:1 chat, or a group's numeric id."},
                "conversation_short_id": {
                    "anyOf": json_id(),
                    "description": "A positive 64-bit id, as a decimal string or a number (n8n sends either); left out, null or blank, it is found from the inbox. Send a string from JavaScript: a number above 2^53 loses digits there before it is sent."
                },
                "to_uid": {
                    "anyOf": json_id(),
                    "description": "Instead of both conversation ids: the user to write to, in the 1:1 conversation `0:1:<smaller uid>:<larger uid>`, which must be in the account's inbox (direct messages or message requests)."
                },
                "text": {"type": ["string", "null"], "maxLength": 6000, "pattern": NO_NUL, "description": "May be empty or left out when an image is sent; at most 6000 UTF-16 units (an emoji outside the BMP counts two)."},
                "image": {
                    "type": ["object", "null"],
                    "additionalProperties": false,
                    "description": "Exactly one of base64 and data_uri, holding a PNG, JPEG, GIF or WebP image.",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "properties": {"base64": {"type": "string", "contentEncoding": "base64"}, "data_uri": {"type": "string", "pattern": "^data:"}}
                },
                "account": {"type": ["string", "null"], "description": "A stored account to send as (instead of X-TikTok-Session)."}
            }
        },
        "SendForm": {
            "type": "object",
            "additionalProperties": false,
            "anyOf": [{"required": ["conversation_id"]}, {"required": ["to_uid"]}],
            "description": "The send request as form fields, each at most once, with the meanings of SendRequest. `image` may also be named `image_base64` or `image_data_uri` as a text part.",
            "properties": {
                "conversation_id": {"type": "string", "pattern": conversation_id_pattern()},
                "conversation_short_id": {"type": "string", "anyOf": [{"pattern": short_id_pattern()}, {"pattern": BLANK}]},
                "to_uid": {"type": "string", "anyOf": [{"pattern": short_id_pattern()}, {"pattern": BLANK}]},
                "text": {"type": "string", "maxLength": 6000, "pattern": NO_NUL},
                "image": {"description": "A file part (raw bytes), or a text part with base64 or a data URI.", "type": "string", "contentMediaType": "application/octet-stream"},
                "image_base64": {"type": "string", "contentEncoding": "base64"},
                "image_data_uri": {"type": "string", "pattern": "^data:"},
                "account": {"type": "string"}
            }
        }
    })
}

/// A message's state, and what a request used of its key's quota.
fn accounting_schemas() -> Value {
    json!({
        "Message": {
            "type": "object",
            "required": ["kind", "client_message_id", "state"],
            "properties": {
                "kind": {"enum": tiktok_dm_proto::message::Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
                "client_message_id": {"type": "string", "description": "Fixed at acceptance; every attempt reuses it."},
                "server_message_id": {"type": ["string", "null"]},
                "state": {"enum": ["accepted", "sending", "sent", "failed", "unknown"]},
                "transport": {"type": ["string", "null"], "enum": ["ws", "http", null]}
            }
        },
        "Usage": {
            "type": "object",
            "required": ["key", "totals"],
            "properties": {
                "key": {"type": "string", "description": "The API key's name."},
                "messages": {"type": "integer", "description": "Messages in this request (an image counts as one)."},
                "image_bytes": {"type": "integer", "description": "Image bytes in this request."},
                "totals": {
                    "type": "object",
                    "required": ["messages_today", "messages_this_month", "messages", "image_bytes"],
                    "properties": {
                        "messages_today": {"type": "integer"},
                        "messages_this_month": {"type": "integer"},
                        "messages": {"type": "integer"},
                        "image_bytes": {"type": "integer"}
                    }
                }
            }
        },
        "QuotaWindow": {
            "type": "object",
            "required": ["limit", "used", "remaining", "resets_at"],
            "properties": {
                "limit": {"type": "integer"},
                "used": {"type": "integer"},
                "remaining": {"type": "integer"},
                "resets_at": {"type": "integer", "description": "Unix seconds (UTC day or month start)."}
            }
        },
        "Quota": {
            "type": ["object", "null"],
            "description": "One entry per configured window (daily, monthly); null when the key has no limit.",
            "additionalProperties": {"$ref": "#/components/schemas/QuotaWindow"}
        }
    })
}

/// The answers of the message and usage endpoints, and of every error.
fn answer_schemas() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "SendResult": {
            "type": "object",
            "required": ["id", "success", "message", "messages", "usage", "quota"],
            "properties": {
                "id": {"type": "string"},
                "success": {"type": "boolean"},
                "message": {"type": "string"},
                "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                "usage": {"$ref": "#/components/schemas/Usage"},
                "quota": {"$ref": "#/components/schemas/Quota"},
                "status_url": {"type": "string", "description": "With 202: where to ask for the outcome."},
                "error": {"$ref": "#/components/schemas/ErrorDetail"}
            }
        },
        "ErrorDetail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"enum": codes},
                "message": {"type": "string"},
                "tiktok_code": {"type": ["integer", "null"], "description": "TikTok's status code for a business rejection (e.g. 7193)."}
            }
        },
        "Error": {
            "type": "object",
            "required": ["success", "message", "error"],
            "properties": {
                "success": {"const": false},
                "message": {"type": "string"},
                "id": {"type": "string", "description": "The send request's id, when it was accepted before it failed."},
                "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}, "description": "An accepted request's messages, with their states; empty otherwise."},
                "usage": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/Usage"}], "description": "An accepted request's usage; null when nothing was accepted."},
                "quota": {"$ref": "#/components/schemas/Quota"},
                "error": {"$ref": "#/components/schemas/ErrorDetail"}
            }
        },
        "UsageAnswer": {
            "type": "object",
            "required": ["success", "usage", "quota"],
            "properties": {
                "success": {"const": true},
                "message": {"type": "string"},
                "usage": {"$ref": "#/components/schemas/Usage"},
                "quota": {"$ref": "#/components/schemas/Quota"}
            }
        }
    })
}

/// API keys and stored accounts, as the admin endpoints take and show them.
fn admin_schemas() -> Value {
    json!({
        "KeySpec": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                "daily_limit": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
                "monthly_limit": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
                "account": {"type": ["string", "null"], "description": "The stored account the key sends as when a send names none; it may send as it."},
                "accounts": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "description": "The stored accounts the key may send as."},
                "any_account": {"type": "boolean", "description": "May send as any stored account."}
            }
        },
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "prefix": {"type": "string", "description": "The key's first 12 characters."},
                "daily_limit": {"type": ["integer", "null"]},
                "monthly_limit": {"type": ["integer", "null"]},
                "account": {"type": ["string", "null"]},
                "accounts": {"type": "array", "items": {"type": "string"}},
                "any_account": {"type": "boolean"},
                "created_at": {"type": "integer"},
                "revoked_at": {"type": ["integer", "null"]}
            }
        },
        "Account": {
            "type": "object",
            "required": ["name", "created_at", "updated_at", "listen", "status", "status_changed_at"],
            "properties": {
                "name": {"type": "string"},
                "created_at": {"type": "integer"},
                "updated_at": {"type": "integer"},
                "listen": {"type": "boolean", "description": "Whether the gateway listens for the account's DMs (PATCH /v1/admin/accounts/{name} switches it)."},
                "status": {"type": "string", "enum": ["active", "expired"], "description": "expired: TikTok refused the session; store a new one."},
                "status_changed_at": {"type": "integer"}
            }
        },
        "AccountStored": {
            "type": "object",
            "required": ["success", "account", "listen"],
            "properties": {
                "success": {"const": true},
                "account": {"type": "string"},
                "listen": {"type": "boolean", "description": "Whether the gateway listens for the account's DMs."}
            }
        },
        "AccountCheck": {
            "type": "object",
            "properties": {
                "account": {"type": "string"},
                "ok": {"type": "boolean"},
                "uid": {"type": ["string", "null"]},
                "unique_id": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"], "enum": ["session_rejected", "upstream_unavailable", null]},
                "message": {"type": ["string", "null"]}
            }
        },
        "Gateways": {
            "type": "object",
            "required": ["success", "gateway", "gateways"],
            "properties": {
                "success": {"const": true},
                "gateway": {"type": "string", "description": "The id of the gateway that answered."},
                "gateways": {"type": "array", "items": {"type": "object", "required": ["id", "started_at", "heartbeat_at", "expires_at", "owned", "outbox_depth"], "properties": {
                    "id": {"type": "string"},
                    "started_at": {"type": "integer"},
                    "heartbeat_at": {"type": "integer"},
                    "expires_at": {"type": "integer", "description": "Counted as dead after this (ms) unless it beats again."},
                    "owned": {"type": "integer", "minimum": 0, "description": "Lanes it holds: stored accounts and per-request sessions."},
                    "outbox_depth": {"type": "integer", "minimum": 0, "description": "Messages not yet final on its lanes."}
                }}}
            }
        }
    })
}

/// Webhooks, as `/v1/webhooks` takes and shows them.
fn webhook_schemas() -> Value {
    let mut types: Vec<&str> = crate::webhooks::EVENT_TYPES.to_vec();
    types.push(crate::webhooks::ALL_EVENTS);
    json!({
        "WebhookSpec": {
            "type": "object",
            "additionalProperties": false,
            "required": ["url", "events"],
            "properties": {
                "url": {"type": "string", "minLength": 1, "maxLength": crate::webhooks::ssrf::MAX_URL_LEN, "description": "An absolute http:// or https:// URL, without user name, password or fragment, reaching a public address (unless allow_private_webhooks is set). Kept normalised."},
                "events": {"type": "array", "minItems": 1, "items": {"enum": types}, "description": "The event types to receive; \"*\" stands for every type known now."}
            }
        },
        "Webhook": {
            "type": "object",
            "required": ["id", "url", "events", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "created_at": {"type": "integer", "description": "Unix milliseconds."}
            }
        },
        "WebhookCreated": {
            "type": "object",
            "required": ["success", "id", "url", "events", "secret", "created_at"],
            "properties": {
                "success": {"const": true},
                "id": {"type": "string"},
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "secret": {"type": "string", "pattern": "^whsec_", "description": "The signing secret (Standard Webhooks): shown here and never again."},
                "created_at": {"type": "integer"}
            }
        },
        "ReplaySpec": {
            "type": "object",
            "additionalProperties": false,
            "required": ["since"],
            "properties": {
                "since": {
                    "oneOf": [
                        {"type": "integer", "minimum": 0, "maximum": i64::MAX},
                        {"type": "string", "pattern": "^[0-9]{1,18}$"}
                    ],
                    "description": "Events after this cursor are sent again (0: every event kept)."
                }
            }
        }
    })
}

fn content(schema: &str) -> Value {
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
}

fn rate_headers() -> Value {
    json!({
        "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "The tightest window's limit (keys with a quota)."},
        "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
        "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Unix seconds."}
    })
}

/// The statuses an operation can answer with besides its success.
fn error_statuses(route: Route) -> &'static [u16] {
    match route {
        Route::SendMessage => &[400, 401, 408, 409, 413, 422, 429, 500, 502, 503, 504],
        Route::GetMessage => &[401, 404, 422, 429, 502, 503, 504],
        Route::Usage => &[401, 429, 503],
        Route::ListEvents => &[400, 401, 408, 429, 503],
        Route::CreateWebhook => &[400, 401, 408, 409, 429, 503],
        Route::ListWebhooks => &[401, 408, 429, 503],
        Route::DeleteWebhook => &[401, 404, 408, 429, 503],
        Route::ReplayWebhook => &[400, 401, 404, 408, 429, 503],
        Route::CreateKey | Route::PutAccount => &[400, 401, 403, 404, 409, 503],
        Route::UpdateAccount => &[400, 401, 403, 404, 503],
        Route::RevokeKey | Route::RemoveAccount | Route::CheckAccount => &[401, 403, 404, 503],
        Route::ListKeys | Route::ListAccounts | Route::ListGateways => &[401, 403, 503],
        Route::Health | Route::Ready | Route::Metrics | Route::OpenApi => &[],
        Route::ListConversations | Route::ListConversationMessages | Route::GetMedia => {
            super::openapi_inbound::error_statuses(route)
        }
    }
}

/// One operation of `paths`: its keys in the order clients have always seen.
fn operation(route: Route) -> Value {
    let (security, tags) = access(route);
    let mut responses = success_responses(route);
    for status in error_statuses(route) {
        responses[status.to_string()] = error_response(*status);
    }
    let mut op = json!({
        "operationId": route.operation_id(),
        "summary": route.summary(),
        "responses": responses,
        "security": security,
        "tags": tags,
    });
    if let Some(body) = request_body(route) {
        op["requestBody"] = body;
    }
    let params = parameters(route);
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    op
}

/// Which keys may call an operation (its `security`), and its tag.
fn access(route: Route) -> (Value, Value) {
    if route.path().starts_with("/v1/admin") {
        (
            json!([{"adminKey": []}, {"adminKeyHeader": []}]),
            json!(["admin"]),
        )
    } else if matches!(route, Route::SendMessage | Route::GetMessage | Route::Usage) {
        (
            json!([{"bearerKey": []}, {"apiKeyHeader": []}]),
            json!(["messages"]),
        )
    } else if route.path().starts_with("/v1/webhooks") {
        (
            json!([{"bearerKey": []}, {"apiKeyHeader": []}]),
            json!(["webhooks"]),
        )
    } else if route == Route::ListEvents {
        (
            json!([{"bearerKey": []}, {"apiKeyHeader": []}]),
            json!(["events"]),
        )
    } else if super::openapi_inbound::is_reading(route) {
        (
            json!([{"bearerKey": []}, {"apiKeyHeader": []}]),
            json!(["conversations"]),
        )
    } else {
        (json!([]), json!(["operations"]))
    }
}

/// The path's `{name}` segments, then the headers a send reads.
fn parameters(route: Route) -> Vec<Value> {
    let mut params: Vec<Value> = route
        .path()
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if route == Route::ListEvents {
        params.extend(events_parameters());
    }
    params.extend(super::openapi_inbound::parameters(route));
    if route == Route::SendMessage {
        params.extend([
            json!({"name": "X-TikTok-Session", "in": "header", "schema": {"type": "string"}, "description": "The TikTok session for this send (instead of a stored account). Kept encrypted only until its messages are final."}),
            json!({"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}, "description": "A repeat with the same key and content returns the first request's result; with other content, 409. At most 255 visible ASCII characters."}),
            json!({"name": "Prefer", "in": "header", "schema": {"type": "string", "enum": ["respond-async"]}, "description": "Answer 202 at once instead of waiting for delivery."}),
        ]);
    }
    params
}

/// The query of `GET /v1/events`.
fn events_parameters() -> [Value; 5] {
    let types = super::events::EVENT_TYPES.join(", ");
    [
        json!({"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "Events after this cursor (0, the default: from the oldest kept); pass the previous answer's next_cursor."}),
        json!({"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::events::MAX_WAIT_SECS}, "description": "Seconds to wait for an event when there is none yet (a long poll; default 0)."}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::events::MAX_LIMIT}, "description": "Most events in the answer (default 100)."}),
        json!({"name": "types", "in": "query", "schema": {"type": "string"}, "description": format!("Comma-separated event types: {types}.")}),
        json!({"name": "account", "in": "query", "schema": {"type": "string"}, "description": "Only this stored account's events (one the key may use)."}),
    ]
}

/// The body an operation takes, if it takes one.
fn request_body(route: Route) -> Option<Value> {
    match route {
        Route::SendMessage => Some(json!({
            "required": true,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}},
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/SendForm"}}
            }
        })),
        Route::CreateKey => Some(json!({"required": true, "content": content("KeySpec")})),
        Route::CreateWebhook => Some(json!({"required": true, "content": content("WebhookSpec")})),
        Route::ReplayWebhook => Some(json!({"required": true, "content": content("ReplaySpec")})),
        Route::PutAccount => Some(
            json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "required": ["session"], "properties": {
                "session": {"type": "string", "pattern": NOT_BLANK, "description": "A Cookie header, a JSON cookie export, or a bare sessionid."},
                "listen": {"type": ["boolean", "null"], "description": "Whether the gateway listens for the account's DMs, set with the session. Left out or null: a new account listens, a replaced one keeps its switch."}
            }}}}}),
        ),
        Route::UpdateAccount => Some(
            json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "required": ["listen"], "properties": {
                "listen": {"type": "boolean", "description": "false: the gateway stops listening for the account's DMs within 2 s; true: it listens again, catching up from where it stopped."}
            }}}}}),
        ),
        _ => None,
    }
}

/// An operation's answers when it succeeds (and `/ready`'s when it does not),
/// keyed by status.
fn success_responses(route: Route) -> Value {
    match route {
        Route::SendMessage => {
            let links = json!({"GetMessage": {"operationId": Route::GetMessage.operation_id(), "parameters": {"id": "$response.body#/id"}, "description": "The request's status and result."}});
            json!({
                "200": {"description": "Delivered.", "headers": rate_headers(), "content": content("SendResult"), "links": links},
                "202": {"description": "Accepted; delivery in progress: the wait ran out, Prefer: respond-async was sent, or max_waiting_sends sends were already waiting.", "headers": rate_headers(), "content": content("SendResult"), "links": links}
            })
        }
        Route::GetMessage => json!({
            "200": {"description": "Delivered.", "content": content("SendResult")},
            "202": {"description": "Still in progress.", "content": content("SendResult")}
        }),
        Route::Usage => {
            json!({"200": {"description": "Usage and quota.", "headers": rate_headers(), "content": content("UsageAnswer")}})
        }
        Route::ListEvents => {
            let event = json!({"type": "object", "required": ["cursor", "type", "account", "timestamp", "data"], "properties": {"cursor": {"type": "string"}, "type": {"type": "string"}, "account": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}, "data": {"type": "object"}}});
            json!({"200": {"description": "The events after the cursor, oldest first (none when the wait ran out).", "content": {"application/json": {"schema": {"type": "object", "required": ["events", "next_cursor"], "properties": {"events": {"type": "array", "items": event}, "next_cursor": {"type": "string"}}}}}}})
        }
        Route::CreateWebhook => {
            let links = json!({
                "DeleteWebhook": {"operationId": Route::DeleteWebhook.operation_id(), "parameters": {"id": "$response.body#/id"}},
                "ReplayWebhook": {"operationId": Route::ReplayWebhook.operation_id(), "parameters": {"id": "$response.body#/id"}}
            });
            json!({"201": {"links": links, "description": "Created. `secret` is shown here and never again.", "content": content("WebhookCreated")}})
        }
        Route::ListWebhooks => {
            json!({"200": {"description": "The key's webhooks, oldest first.", "content": {"application/json": {"schema": {"type": "object", "required": ["success", "webhooks"], "properties": {"success": {"const": true}, "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}}}}}}})
        }
        Route::DeleteWebhook => {
            json!({"204": {"description": "Deleted, with its queued deliveries."}})
        }
        Route::ReplayWebhook => {
            json!({"202": {"description": "Queued; `queued` deliveries were queued or made due.", "content": {"application/json": {"schema": {"type": "object", "required": ["success", "queued"], "properties": {"success": {"const": true}, "queued": {"type": "integer", "minimum": 0}}}}}}})
        }
        Route::CreateKey => {
            let links = json!({"RevokeKey": {"operationId": Route::RevokeKey.operation_id(), "parameters": {"name": "$response.body#/api_key/name"}}});
            json!({"201": {"links": links, "description": "Created. `key` is shown here and never again.", "content": {"application/json": {"schema": {"type": "object", "properties": {"success": {"const": true}, "key": {"type": "string"}, "api_key": {"$ref": "#/components/schemas/ApiKey"}}}}}}})
        }
        Route::ListKeys => {
            json!({"200": {"description": "Every key.", "content": {"application/json": {"schema": {"type": "object", "properties": {"success": {"const": true}, "api_keys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}}}}}}})
        }
        Route::ListAccounts => {
            json!({"200": {"description": "Every stored account.", "content": {"application/json": {"schema": {"type": "object", "properties": {"success": {"const": true}, "accounts": {"type": "array", "items": {"$ref": "#/components/schemas/Account"}}}}}}}})
        }
        Route::ListGateways => {
            json!({"200": {"description": "Live gateways (`gateway` is the one answering).", "content": content("Gateways")}})
        }
        Route::PutAccount => {
            let links = json!({
                "CheckAccount": {"operationId": Route::CheckAccount.operation_id(), "parameters": {"name": "$response.body#/account"}},
                "UpdateAccount": {"operationId": Route::UpdateAccount.operation_id(), "parameters": {"name": "$response.body#/account"}},
                "RemoveAccount": {"operationId": Route::RemoveAccount.operation_id(), "parameters": {"name": "$response.body#/account"}}
            });
            json!({"200": {"description": "Stored (encrypted); `listen` is the account's switch now.", "links": links, "content": content("AccountStored")}})
        }
        Route::UpdateAccount => {
            json!({"200": {"description": "Switched; `listen` is the account's switch now.", "content": content("AccountStored")}})
        }
        Route::CheckAccount => {
            json!({"200": {"description": "What TikTok said (`check.ok`).", "content": {"application/json": {"schema": {"type": "object", "properties": {"success": {"const": true}, "check": {"$ref": "#/components/schemas/AccountCheck"}}}}}}})
        }
        Route::RevokeKey | Route::RemoveAccount => json!({"200": {"description": "Done."}}),
        Route::Health => {
            json!({"200": {"description": "`ok`.", "content": {"text/plain": {"schema": {"const": "ok"}}}}})
        }
        Route::Ready => json!({
            "200": {"description": "Ready.", "content": {"application/json": {"schema": {"type": "object", "properties": {"ready": {"const": true}, "outbox_depth": {"type": "integer"}}}}}},
            "503": {"description": "The database does not answer."}
        }),
        Route::Metrics => {
            json!({"200": {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}})
        }
        Route::OpenApi => {
            json!({"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}})
        }
        Route::ListConversations | Route::ListConversationMessages | Route::GetMedia => {
            super::openapi_inbound::success_responses(route)
        }
    }
}

/// The answer for an error status, naming every error code sent with it.
fn error_response(status: u16) -> Value {
    let codes: Vec<&str> = ErrorCode::ALL
        .iter()
        .filter(|c| c.status().as_u16() == status)
        .map(|c| c.as_str())
        .collect();
    let mut answer = json!({
        "description": format!("Error; error.code is one of: {}.", codes.join(", ")),
        "content": content("Error"),
    });
    if status == 429 {
        answer["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait: until the quota window resets (quota_exceeded), or 1 (too_many_concurrent_requests)."}});
    }
    if status == 503 {
        answer["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}});
    }
    answer
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in Route::ALL {
        let item = paths.entry(route.path()).or_insert_with(|| json!({}));
        item[route.method().as_str().to_ascii_lowercase()] = operation(*route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tiktok-dm gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Send TikTok direct messages (text and images) into existing conversations, with API keys, quota, stored accounts and a durable outbox. Every answer has the original n8n node's shape: success, message, messages, usage, quota.",
            "license": {"name": "MIT", "identifier": "MIT"}
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearerKey": {"type": "http", "scheme": "bearer", "description": "An API key (tdm_...)."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key, for clients whose Authorization header carries something else (a proxy's Basic credentials, say): it is read only when Authorization is not `Bearer ...`."},
                "adminKey": {"type": "http", "scheme": "bearer", "description": "The admin key."},
                "adminKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Admin-Key", "description": "The admin key, for clients whose Authorization header carries something else: it is read only when Authorization is not `Bearer ...`."}
            }
        },
        "x-error-codes": error_codes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiktok_dm_proto::ids::{ConversationId, ConversationShortId};

    fn agree(pattern: &str, parses: impl Fn(&str) -> bool, candidates: &[String]) {
        let re = regex::Regex::new(pattern).unwrap();
        for c in candidates {
            assert_eq!(
                re.is_match(c),
                parses(c),
                "pattern {pattern} and the parser disagree on {c:?}"
            );
        }
    }

    fn numbers() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "0",
            "00",
            "1",
            "007",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 42 ",
            "\t42\n",
            "4 2",
            "x",
            "9223372036854775806",
            "9223372036854775807",
            "9223372036854775808",
            "9223372036854775810",
            "9223372036854775900",
            "9300000000000000000",
            "10000000000000000000",
            "99999999999999999999",
            "0009223372036854775807",
            "7200000000000000001",
            "999999999999999999",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Each digit of i64::MAX, one higher and one lower, one at a time.
        let max = i64::MAX.to_string();
        for i in 0..max.len() {
            for delta in [-1i8, 1] {
                let mut digits = max.clone().into_bytes();
                let d = digits[i] as i8 + delta;
                if (b'0' as i8..=b'9' as i8).contains(&d) {
                    digits[i] = d as u8;
                    out.push(String::from_utf8(digits).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn the_short_id_pattern_accepts_what_the_parser_accepts() {
        agree(
            &short_id_pattern(),
            |s| ConversationShortId::parse(s).is_ok(),
            &numbers(),
        );
    }

    #[test]
    fn the_conversation_id_pattern_accepts_what_the_parser_accepts() {
        let mut candidates = numbers();
        candidates.extend(
            [
                "0:1:7000000000000000001:7000000000000000002",
                " 0:1:1:2\n",
                "0:1:1",
                "0:1:1:2:3",
                "0:1::2",
                "a:1:1:2",
                "0:1:1:2 x",
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        agree(
            &conversation_id_pattern(),
            |s| ConversationId::parse(s).is_ok(),
            &candidates,
        );
    }
}
