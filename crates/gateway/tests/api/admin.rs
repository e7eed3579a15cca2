//! The admin API: keys and accounts over HTTP, guarded by the admin key.

use serde_json::{Value, json};

use crate::{ADMIN_KEY, ALICE, admin, spawn_app, spawn_app_with};

#[tokio::test]
async fn keys_are_created_listed_used_and_revoked_over_the_admin_api() {
    let app = spawn_app().await;
    let (status, created) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/keys",
        Some(json!({"name": "crm", "daily_limit": 10})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tdm_"));
    assert_eq!(created["api_key"]["daily_limit"], 10);
    let (status, _) = app
        .post(&key, &app.body("via an admin-made key"), &[])
        .await;
    assert_eq!(status, 200);
    let (_, listed) = admin(&app, reqwest::Method::GET, "/v1/admin/keys", None).await;
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains(&key),
        "a key is shown only once"
    );
    let (status, dup) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/keys",
        Some(json!({"name": "crm"})),
    )
    .await;
    assert_eq!(
        (status, dup["error"]["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, bad) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/keys",
        Some(json!({"name": "no spaces please"})),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/v1/admin/keys/crm", None).await;
    assert_eq!(status, 200);
    let (status, answer) = app.post(&key, &app.body("after revocation"), &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("api_key_revoked"))
    );
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/v1/admin/keys/crm", None).await;
    assert_eq!(status, 404, "already revoked");
    assert_eq!(app.sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn accounts_are_stored_checked_and_never_shown() {
    let app = spawn_app().await;
    let (status, _) = admin(
        &app,
        reqwest::Method::PUT,
        "/v1/admin/accounts/shop",
        Some(json!({"session": ALICE})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, listed) = admin(&app, reqwest::Method::GET, "/v1/admin/accounts", None).await;
    assert_eq!(listed["accounts"][0]["name"], "shop");
    let (status, check) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/accounts/shop/check",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(check["check"]["ok"], true, "{check}");
    let alice = app.sandbox.handle.account("alice").unwrap().clone();
    assert_eq!(check["check"]["uid"], alice.uid.to_string());
    // A session TikTok does not know.
    admin(
        &app,
        reqwest::Method::PUT,
        "/v1/admin/accounts/stale",
        Some(json!({"session": "sandbox-session-logged-out"})),
    )
    .await;
    let (_, check) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/accounts/stale/check",
        None,
    )
    .await;
    assert_eq!(check["check"]["ok"], false, "{check}");
    assert_eq!(check["check"]["code"], "session_rejected");
    let (status, missing) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/accounts/nobody/check",
        None,
    )
    .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // A key bound to the account sends without a session header.
    let (status, created) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/keys",
        Some(json!({"name": "bound", "account": "shop"})),
    )
    .await;
    assert_eq!(status, 201);
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(created["key"].as_str().unwrap())
        .json(&app.body("as the shop"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let everything = format!("{listed}{check}{created}");
    assert!(!everything.contains(ALICE), "no session in any answer");
    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        "/v1/admin/accounts/shop",
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_admin_api_wants_the_admin_key_and_is_off_without_one() {
    let app = spawn_app().await;
    let api_key = app
        .http
        .get(app.url("/v1/admin/keys"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(api_key.status(), 401, "an API key is not an admin key");
    let none = app
        .http
        .get(app.url("/v1/admin/keys"))
        .send()
        .await
        .unwrap();
    let none: Value = none.json().await.unwrap();
    assert_eq!(none["error"]["code"], "admin_key_missing");
    let off = spawn_app_with(|s| s.admin_key_hash = None).await;
    let resp = off
        .http
        .get(off.url("/v1/admin/keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "admin_disabled"
    );
}

/// A PUT or PATCH of `/v1/admin/accounts/{name}` with `body`.
async fn account(
    app: &crate::TestApp,
    method: reqwest::Method,
    name: &str,
    body: Value,
) -> (u16, Value) {
    admin(
        app,
        method,
        &format!("/v1/admin/accounts/{name}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn an_accounts_listening_is_set_with_its_session_or_switched_alone() {
    let app = spawn_app().await;
    let put = |name: &'static str, body: Value| account(&app, reqwest::Method::PUT, name, body);
    let patch = |name: &'static str, body: Value| account(&app, reqwest::Method::PATCH, name, body);
    let listening = || async {
        let (_, listed) = admin(&app, reqwest::Method::GET, "/v1/admin/accounts", None).await;
        listed["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_owned(),
                    a["listen"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (status, stored) = put("quiet", json!({"session": ALICE, "listen": false})).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored,
        json!({"success": true, "account": "quiet", "listen": false})
    );
    let (_, stored) = put("loud", json!({"session": ALICE})).await;
    assert_eq!(stored["listen"], true, "a new account listens by default");
    // A new session, listen left out or null: the switch stays.
    let (_, stored) = put("quiet", json!({"session": ALICE, "listen": null})).await;
    assert_eq!(stored["listen"], false);
    assert_eq!(
        listening().await,
        [("loud".to_owned(), true), ("quiet".to_owned(), false)]
    );

    let (status, switched) = patch("quiet", json!({"listen": true})).await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(
        switched,
        json!({"success": true, "account": "quiet", "listen": true})
    );
    let (status, _) = patch("loud", json!({"listen": false})).await;
    assert_eq!(status, 200);
    assert_eq!(
        listening().await,
        [("loud".to_owned(), false), ("quiet".to_owned(), true)]
    );
    // The session is untouched: the account still sends.
    let (status, check) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/accounts/loud/check",
        None,
    )
    .await;
    assert_eq!((status, &check["check"]["ok"]), (200, &json!(true)));

    let (status, missing) = patch("nobody", json!({"listen": false})).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nobody\""),
        "{missing}"
    );
    for bad in [
        json!({}),
        json!({"listen": "off"}),
        json!({"listen": null}),
        json!({"listen": false, "session": ALICE}),
    ] {
        let (status, refused) = patch("quiet", bad.clone()).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{bad}"
        );
    }
    let (status, refused) = put("quiet", json!({"session": ALICE, "listen": "no"})).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    assert_eq!(
        listening().await,
        [("loud".to_owned(), false), ("quiet".to_owned(), true)],
        "refused changes change nothing"
    );
    let (status, _) = app
        .http
        .patch(app.url("/v1/admin/accounts/quiet"))
        .bearer_auth(&app.key)
        .json(&json!({"listen": false}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401, "an API key is not an admin key");
}

/// `GET /v1/admin/gateways` lists this gateway with the lanes it holds (a
/// stored account's, taken at a tick; a per-request session's, taken at its
/// first send) and their outbox depth; `/metrics` shows the same.
#[tokio::test]
async fn the_gateway_lists_itself_with_the_lanes_it_holds() {
    let app = crate::spawn_app_with(|s| s.owner_lease = std::time::Duration::from_secs(3)).await;
    let (status, _) = admin(
        &app,
        reqwest::Method::PUT,
        "/v1/admin/accounts/shop",
        Some(json!({"session": ALICE})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = app.post(&app.key, &app.body("takes a lane"), &[]).await;
    assert_eq!(status, 200);
    let mut listed = serde_json::Value::Null;
    for _ in 0..50 {
        (_, listed) = admin(&app, reqwest::Method::GET, "/v1/admin/gateways", None).await;
        if listed["gateways"][0]["owned"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let gateways = listed["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 1, "{listed}");
    assert_eq!(gateways[0]["id"], listed["gateway"]);
    assert!(listed["gateway"].as_str().unwrap().starts_with("gw_"));
    assert_eq!(
        gateways[0]["owned"], 2,
        "the account and the session: {listed}"
    );
    assert_eq!(gateways[0]["outbox_depth"], 0);
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("tiktok_dm_gateways_live 1"), "{metrics}");
    assert!(metrics.contains("tiktok_dm_lanes_owned 2"), "{metrics}");
}
