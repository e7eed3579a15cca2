//! `/openapi.json` stays in sync with the router, the error codes, the README and
//! real answers; `/metrics` counts what happened.

use serde_json::{Value, json};
use tiktok_dm_gateway::api::{ErrorCode, Route};

use crate::{admin, spawn_app};

const README: &str = include_str!("../../../../README.md");

/// A small JSON Schema check for the keywords the document uses.
pub(crate) fn conforms(value: &Value, schema: &Value, doc: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "{at}: dangling {r}");
        return conforms(value, target, doc, at);
    }
    if let Some(c) = schema.get("const") {
        assert_eq!(value, c, "{at}");
    }
    if let Some(options) = schema["enum"].as_array() {
        assert!(options.contains(value), "{at}: {value} not in {options:?}");
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            types.contains(&actual),
            "{at}: {actual} is not one of {types:?}"
        );
    }
    if let Value::Object(map) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap();
            assert!(map.contains_key(key), "{at}: missing {key}");
        }
        let properties = schema["properties"].as_object();
        for (key, v) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => conforms(v, s, doc, &format!("{at}.{key}")),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => panic!("{at}: {key} is not documented"),
                    s @ Value::Object(_) => conforms(v, s, doc, &format!("{at}.{key}")),
                    _ => assert!(properties.is_none(), "{at}: {key} is not documented"),
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(item, item_schema, doc, &format!("{at}[{i}]"));
        }
    }
}

pub(crate) fn schema_for(doc: &Value, route: Route, status: u16) -> &Value {
    let op = &doc["paths"][route.path()][route.method().as_str().to_ascii_lowercase()];
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{route:?} documents no {status} body");
    schema
}

#[tokio::test]
async fn the_document_lists_every_route_and_error_code_and_the_router_serves_them() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let route = Route::ALL
                .iter()
                .find(|r| r.path() == path && r.method().as_str().eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is documented but not a route"));
            assert_eq!(op["operationId"], route.operation_id());
            // The router answers it (a path parameter gets a value that exists nowhere).
            let concrete = path
                .replace("{id}", "req_nothing")
                .replace("{name}", "nobody");
            let resp = app
                .http
                .request(route.method(), app.url(&concrete))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap();
            assert_ne!(resp.status(), 405, "{method} {path}");
            if resp.status() == 404 {
                let body: Value = resp.json().await.unwrap();
                let code = body["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    code == "not_found" || code == "webhook_not_found",
                    "{method} {path} is routed: {code}"
                );
            }
        }
    }
    assert_eq!(operations, Route::ALL.len());
    let documented: Vec<(String, u64)> = doc["x-error-codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_owned(),
                c["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let actual: Vec<(String, u64)> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), u64::from(c.status().as_u16())))
        .collect();
    assert_eq!(documented, actual);
    for code in ErrorCode::ALL {
        assert!(
            README.contains(&format!("`{}`", code.as_str())),
            "the README's error table lacks {}",
            code.as_str()
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(
            !doc["components"]["schemas"][name].is_null(),
            "dangling {name}"
        );
    }
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json", None).await;
    let key = app.key_with_limit("limited", Some(5)).await;
    let (status, sent) = app.post(&key, &app.body("schema check"), &[]).await;
    assert_eq!(status, 200);
    conforms(
        &sent,
        schema_for(&doc, Route::SendMessage, 200),
        &doc,
        "send",
    );
    let (status, accepted) = app
        .post(&key, &app.body("async"), &[("prefer", "respond-async")])
        .await;
    assert_eq!(status, 202);
    conforms(
        &accepted,
        schema_for(&doc, Route::SendMessage, 202),
        &doc,
        "send 202",
    );
    let (status, refused) = app.post(&key, &json!({"text": "x"}), &[]).await;
    assert_eq!(status, 400);
    conforms(
        &refused,
        schema_for(&doc, Route::SendMessage, 400),
        &doc,
        "send 400",
    );
    let usage = app.get_json("/v1/usage", Some(&key)).await;
    conforms(&usage, schema_for(&doc, Route::Usage, 200), &doc, "usage");
    let (_, created) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/keys",
        Some(json!({"name": "documented", "daily_limit": 3})),
    )
    .await;
    conforms(
        &created,
        schema_for(&doc, Route::CreateKey, 201),
        &doc,
        "create key",
    );
    let (_, listed) = admin(&app, reqwest::Method::GET, "/v1/admin/keys", None).await;
    conforms(
        &listed,
        schema_for(&doc, Route::ListKeys, 200),
        &doc,
        "list keys",
    );
    let (_, stored) = admin(
        &app,
        reqwest::Method::PUT,
        "/v1/admin/accounts/shop",
        Some(json!({"session": crate::ALICE, "listen": false})),
    )
    .await;
    conforms(
        &stored,
        schema_for(&doc, Route::PutAccount, 200),
        &doc,
        "put account",
    );
    let (_, switched) = admin(
        &app,
        reqwest::Method::PATCH,
        "/v1/admin/accounts/shop",
        Some(json!({"listen": true})),
    )
    .await;
    conforms(
        &switched,
        schema_for(&doc, Route::UpdateAccount, 200),
        &doc,
        "update account",
    );
    let (_, check) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/accounts/shop/check",
        None,
    )
    .await;
    conforms(
        &check,
        schema_for(&doc, Route::CheckAccount, 200),
        &doc,
        "check",
    );
    let (_, accounts) = admin(&app, reqwest::Method::GET, "/v1/admin/accounts", None).await;
    conforms(
        &accounts,
        schema_for(&doc, Route::ListAccounts, 200),
        &doc,
        "accounts",
    );
}

#[tokio::test]
async fn metrics_count_sends_by_outcome_and_tiktok_code() {
    let app = spawn_app().await;
    assert_eq!(app.post(&app.key, &app.body("counted"), &[]).await.0, 200);
    let c = app.sandbox.handle.seed().conversations[1].clone();
    let body = |t: &str| json!({"conversation_id": c.conversation_id.to_string(), "conversation_short_id": c.conversation_short_id.get(), "text": t});
    assert_eq!(app.post(&app.key, &body("first request"), &[]).await.0, 200);
    assert_eq!(
        app.post(&app.key, &body("second request"), &[]).await.0,
        422
    );
    let text = app.get_text("/metrics").await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value("tiktok_dm_sends_total{outcome=\"sent\",kind=\"text\",code=\"ok\",tiktok_code=\"\"}"),
        2.0
    );
    assert_eq!(
        value(
            "tiktok_dm_sends_total{outcome=\"failed\",kind=\"text\",code=\"business_rejected\",tiktok_code=\"7193\"}"
        ),
        1.0
    );
    assert_eq!(value("tiktok_dm_messages_accepted_total"), 3.0);
    assert_eq!(
        value(
            "tiktok_dm_http_requests_total{route=\"/v1/messages\",method=\"POST\",status=\"422\"}"
        ),
        1.0
    );
    assert_eq!(
        value("tiktok_dm_delivery_seconds_count{kind=\"text\"}"),
        3.0
    );
    assert_eq!(value("tiktok_dm_outbox_depth"), 0.0);
    assert_eq!(value("tiktok_dm_sessions_connected"), 1.0);
    assert!(!text.contains(&app.key) && !text.contains(crate::ALICE));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_apis_shape() {
    let app = spawn_app().await;
    let missing = app.http.get(app.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        (body["success"].as_bool(), body["error"]["code"].as_str()),
        (Some(false), Some("not_found"))
    );
    let wrong = app.http.put(app.url("/v1/messages")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "POST");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn made_up_methods_do_not_add_metric_series() {
    let app = spawn_app().await;
    for method in ["FOO1", "FOO2", "FOO3"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = app
            .http
            .request(method, app.url("/v1/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
    }
    let metrics = app.get_text("/metrics").await;
    assert!(!metrics.contains("FOO"), "{metrics}");
    assert!(
        metrics.contains(
            "tiktok_dm_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 3"
        ),
        "{metrics}"
    );
}
