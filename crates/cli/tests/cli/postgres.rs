//! `tiktok-dm serve` and `keys` on a PostgreSQL database (`--database
//! postgres://...`), in a schema of the test's own.

use tiktok_dm_test_support::postgres::PgSchema;

use crate::{args, run, run_with_env, spawn_ready_with_env};

/// 32 bytes, base64: a master key for `TIKTOK_DM_MASTER_KEY`.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::test(flavor = "multi_thread")]
async fn serve_keys_and_sends_work_on_postgres_and_the_rows_are_there() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let schema = PgSchema::create().await;
    let database = schema.url.as_str();

    // Gateways sharing a server database need the same master key: none is
    // made up beside one of them.
    let serve = [
        "serve",
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--database",
        database,
    ];
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
