//! The OpenAPI pieces of the reading routes (`/v1/conversations`, their
//! messages, `/v1/media/{cursor}`): parameters, answers and schemas, kept
//! apart from `openapi.rs` to keep each file short.

use serde_json::{Value, json};

use super::Route;
use super::conversations::{DEFAULT_LIMIT, MAX_LIMIT};

/// Whether `route` is one of these.
pub(super) fn is_reading(route: Route) -> bool {
    matches!(
        route,
        Route::ListConversations | Route::ListConversationMessages | Route::GetMedia
    )
}

/// The statuses one of them answers with besides its success.
pub(super) fn error_statuses(route: Route) -> &'static [u16] {
    match route {
        Route::ListConversations | Route::ListConversationMessages => {
            &[400, 401, 408, 422, 429, 500, 502, 503]
        }
        Route::GetMedia => &[400, 401, 404, 408, 422, 429, 500, 502, 503],
        _ => &[],
    }
}

/// Their query parameters (the path's come from the path).
pub(super) fn parameters(route: Route) -> Vec<Value> {
    let account = json!({"name": "account", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1}, "description": "The stored account to read as (one the key may use)."});
    match route {
        Route::ListConversations => vec![account],
        Route::ListConversationMessages => vec![
            account,
            json!({"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}, "description": "The previous page's next_cursor: messages older than it. Left out: the newest page."}),
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "description": format!("Most messages in the page (default {DEFAULT_LIMIT}).")}),
            json!({"name": "conversation_short_id", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}, "description": "The conversation's short id, sent along to TikTok when given (as TikTok web does)."}),
        ],
        _ => vec![],
    }
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// Their successful answers.
pub(super) fn success_responses(route: Route) -> Value {
    match route {
        Route::ListConversations => json!({"200": {
            "description": "The account's conversations: direct messages and message requests.",
            "content": json_content(json!({"type": "object", "required": ["conversations"], "properties": {"conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Conversation"}}}}))
        }}),
        Route::ListConversationMessages => json!({"200": {
            "description": "One page of the conversation's history, newest first.",
            "content": json_content(json!({"type": "object", "required": ["messages", "next_cursor"], "properties": {
                "messages": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryEvent"}},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `before` for the next (older) page; null at the end."}
            }}))
        }}),
        Route::GetMedia => json!({"200": {
            "description": "The image, decrypted. Content-Type is the image's type (image/jpeg, image/png, image/gif, image/webp), or application/octet-stream when the bytes are none of those.",
            "content": {
                "image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}},
                "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
            }
        }}),
        _ => json!({}),
    }
}

/// A received image as the API shows it: never its key.
fn image_schema() -> Value {
    json!({
        "type": ["object", "null"],
        "required": ["path", "urls"],
        "properties": {
            "path": {"type": "string"},
            "urls": {"type": "array", "items": {"type": "string"}},
            "width": {"type": ["integer", "null"]},
            "height": {"type": ["integer", "null"]}
        },
        "not": {"required": ["decrypt_key"]}
    })
}

/// `Conversation` and `HistoryEvent`, for `components.schemas`.
pub(super) fn schemas() -> Value {
    let id = json!({"type": "string", "pattern": "^[0-9]+$"});
    let opt_id = json!({"type": ["string", "null"], "pattern": "^[0-9]+$"});
    let message = json!({
        "type": "object",
        "required": ["conversation_id", "server_message_id", "sender_uid", "created_at_ms", "direction", "kind", "message_type", "content"],
        "properties": {
            "conversation_id": {"type": "string"},
            "conversation_short_id": opt_id,
            "server_message_id": id,
            "client_message_id": {"type": ["string", "null"]},
            "sender_uid": id,
            "created_at_ms": {"type": "integer"},
            "direction": {"enum": ["inbound", "outbound"]},
            "kind": {"enum": ["text", "image", "other"]},
            "text": {"type": ["string", "null"]},
            "image": image_schema(),
            "message_type": {"type": "integer"},
            "content": {"type": "string"},
            "index_in_conversation": opt_id
        }
    });
    // A history event: a message's fields, or those of the other events
    // (a read, a reaction, a deletion), each with its `type`.
    let mut event_properties = message["properties"].clone();
    event_properties["type"] = json!({"enum": ["message.received", "message.read", "typing", "reaction", "message.deleted"]});
    for (name, schema) in [
        ("reader_uid", id.clone()),
        ("read_index", opt_id.clone()),
        ("uid", id.clone()),
        (
            "changes",
            json!({"type": "array", "items": {"type": "object"}}),
        ),
        ("event_message_id", opt_id.clone()),
        ("by_uid", id.clone()),
        ("only_for_me", json!({"type": "boolean"})),
    ] {
        event_properties[name] = schema;
    }
    let mut listed = message.clone();
    listed["type"] = json!(["object", "null"]);
    json!({
        "Conversation": {
            "type": "object",
            "required": ["conversation_id", "conversation_short_id", "peer_uid", "inbox_type", "message_request", "last_message"],
            "properties": {
                "conversation_id": {"type": "string"},
                "conversation_short_id": opt_id,
                "peer_uid": opt_id,
                "inbox_type": {"type": "integer", "description": "0 direct messages, 3 message requests."},
                "message_request": {"type": "boolean"},
                "last_message": listed
            }
        },
        "HistoryEvent": {
            "type": "object",
            "required": ["type", "conversation_id"],
            "description": "A message (`type` message.received, with the fields of a received message; `image` without its key: fetch a logged one with GET /v1/media/{cursor}), or another event a history holds (message.read, reaction, message.deleted), with its own fields.",
            "properties": event_properties
        }
    })
}
