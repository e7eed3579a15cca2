//! `tiktok-dm serve` settings: a config file, `TIKTOK_DM_*` variables and flags,
//! validated before anything starts.

use crate::{args, run_with_env};

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_stop_serve_at_once_and_say_where_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    std::fs::write(&file, "max_attempts = 0\n").unwrap();
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, String);
    let cases: [Case<'_>; 4] = [
        (
            args(&[
                "serve",
                "--config",
                file.to_str().unwrap(),
                "--database",
                db,
            ]),
            vec![],
            format!(
                "{}: max_attempts = \"0\": expected a whole number from 1 to 100",
                file.display()
            ),
        ),
        (
            args(&["serve", "--database", db]),
            vec![("TIKTOK_DM_MAX_ATTEMPT", "3")],
            "environment variable TIKTOK_DM_MAX_ATTEMPT: unknown setting".into(),
        ),
        (
            args(&["serve", "--listen", "nowhere", "--database", db]),
            vec![],
            "--listen = \"nowhere\": expected an address and port".into(),
        ),
        (
            args(&["serve", "--config", "/nonexistent/gateway.toml"]),
            vec![],
            "cannot read the config file /nonexistent/gateway.toml".into(),
        ),
    ];
    for (argv, env, expected) in cases {
        let out = run_with_env(argv.clone(), None, &env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains(&expected), "{argv:?}: {stderr}");
    }
    assert!(
        !std::path::Path::new(db).exists(),
        "nothing was created before the settings were valid"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_sets_the_upstream_and_the_admin_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let admin_key = "an-admin-key-for-this-test";
    let hash = {
        use sha2::Digest as _;
        sha2::Sha256::digest(admin_key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\nsandbox_url = \"{}\"\nadmin_key_sha256 = \"{hash}\"\nwait_for_delivery_secs = 10\n",
            dir.path().join("gw.sqlite").display(),
            sandbox.base_url()
        ),
    )
    .unwrap();
    let (mut child, ready) =
        crate::spawn_ready(&["serve", "--config", file.to_str().unwrap()]).await;
    let url = ready["url"].as_str().unwrap();
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{url}/v1/admin/keys"))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({"name": "from-config"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let c = &sandbox.handle.seed().conversations[0];
    let resp = http
        .post(format!("{url}/v1/messages"))
        .bearer_auth(key)
        .header("x-tiktok-session", "sandbox-session-alice")
        .json(&serde_json::json!({"conversation_id": c.conversation_id.to_string(), "conversation_short_id": c.conversation_short_id.get(), "text": "configured by file"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        sandbox.handle.messages()[0].content["text"],
        "configured by file"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
