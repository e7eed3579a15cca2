//! `tiktok-dm serve` and `keys` on a PostgreSQL database (`--database
//! postgres://...`), in a schema of the test's own.

use tiktok_dm_test_support::postgres::PgSchema;

use crate::{args, run, run_with_env, spawn_ready_with_env};

/// 32 bytes, base64: a master key for `TIKTOK_DM_MASTER_KEY`.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `serve --sandbox` on loopback, on `database`.
fn serve_sandbox_on(database: &str) -> [&str; 6] {
    [
        "serve",
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--database",
        database,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_keys_and_sends_work_on_postgres_and_the_rows_are_there() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let database = schema.url.as_str();

    // Gateways sharing a server database need the same master key: none is
    // made up beside one of them.
    let serve = serve_sandbox_on(database);
    let refused = run(args(&serve), None).await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("TIKTOK_DM_MASTER_KEY"), "{stderr}");

    let env = [("TIKTOK_DM_MASTER_KEY", MASTER_KEY)];
    let (mut child, ready) = spawn_ready_with_env(&serve, &env).await;
    let (status, answer) = crate::send_text(
        &ready,
        ready["api_key"].as_str().unwrap(),
        "stored in PostgreSQL",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["messages"][0]["state"], "sent", "{answer}");

    // Keys are managed on the same database while the gateway runs.
    let created = run_with_env(
        args(&[
            "keys",
            "create",
            "--name",
            "pg",
            "--json",
            "--database",
            database,
        ]),
        None,
        &env,
    )
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = crate::json(&created)["key"].as_str().unwrap().to_owned();
    let listed = run(args(&["keys", "list", "--database", database]), None).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("\"pg\"") && !listed.contains(&key),
        "{listed}"
    );

    // What the gateway wrote is in PostgreSQL, the session sealed.
    let id = answer["id"].as_str().unwrap();
    assert_eq!(
        schema
            .query_text(&format!(
                "SELECT state FROM outbox WHERE request_id = '{id}'"
            ))
            .await,
        ["sent"]
    );
    assert_eq!(
        schema
            .query_text("SELECT name FROM api_keys ORDER BY id")
            .await
            .len(),
        2
    );
    let sealed = schema
        .query_text("SELECT encode(session_sealed, 'escape') FROM accounts")
        .await;
    assert_eq!(sealed.len(), 1);
    assert!(
        !sealed[0].contains("sandbox-session"),
        "sessions are sealed"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

/// PostgreSQL's text cannot hold U+0000, which JSON and URLs can carry: each
/// such request gets its clear 4xx, none an internal error.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_character_gets_a_clear_answer_on_postgres_not_an_internal_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let serve = serve_sandbox_on(&schema.url);
    let (mut child, ready) =
        spawn_ready_with_env(&serve, &[("TIKTOK_DM_MASTER_KEY", MASTER_KEY)]).await;
    let url = ready["url"].as_str().unwrap();
    let (api_key, admin_key) = (
        ready["api_key"].as_str().unwrap(),
        ready["admin_key"].as_str().unwrap(),
    );
    let conversation = &ready["conversations"][0];
    let send = |text: &str, account: Option<&str>| {
        let mut body = serde_json::json!({
            "conversation_id": conversation["conversation_id"],
            "conversation_short_id": conversation["conversation_short_id"],
            "text": text,
        });
        if let Some(a) = account {
            body["account"] = a.into();
        }
        body
    };
    let http = reqwest::Client::new();
    let cases = [
        (
            "POST",
            "/v1/messages",
            api_key,
            Some(send("a\u{0}b", None)),
            400,
            "text_invalid",
        ),
        (
            "POST",
            "/v1/messages",
            api_key,
            Some(send("hi", Some("x\u{0}y"))),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/messages/req_%00",
            api_key,
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/admin/keys/a%00b",
            admin_key,
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/admin/accounts/a%00b",
            admin_key,
            None,
            404,
            "not_found",
        ),
        (
            "PATCH",
            "/v1/admin/accounts/a%00b",
            admin_key,
            Some(serde_json::json!({"listen": false})),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/admin/accounts/a%00b/check",
            admin_key,
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/admin/keys",
            admin_key,
            Some(serde_json::json!({"name": "k1", "account": "a\u{0}b"})),
            400,
            "invalid_request",
        ),
    ];
    for (method, path, key, body, status, code) in cases {
        let mut request = http
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }
    // The gateway still works.
    let (status, answer) = crate::send_text(&ready, api_key, "after all that").await;
    assert_eq!(status, 200, "{answer}");
    child.kill().unwrap();
    let _ = child.wait();
}
