//! `tiktok-dm serve --sandbox` and `tiktok-dm keys`, run as a user would.

use crate::{args, run};

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_the_sandbox_prints_what_a_curl_needs_and_delivers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let (mut child, ready) = crate::spawn_ready(&[
        "serve",
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--database",
        db.to_str().unwrap(),
    ])
    .await;
    let text = "sent through the gateway";
    let (status, answer) = crate::send_text(&ready, ready["api_key"].as_str().unwrap(), text).await;
    assert_eq!(status, 200);
    assert_eq!(answer["success"], true, "{answer}");
    let received: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/_sandbox/messages",
            ready["sandbox_url"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        received[0]["server_message_id"],
        answer["messages"][0]["server_message_id"]
    );

    // Keys can be managed while the gateway runs, and are never listed.
    let out = run(
        args(&[
            "keys",
            "create",
            "--name",
            "ci",
            "--daily-limit",
            "5",
            "--json",
            "--database",
            db.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = crate::json(&out);
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tdm_"));
    let (status, _) = crate::send_text(&ready, &key, text).await;
    assert_eq!(
        status, 400,
        "this key has no account bound and the request no session"
    );
    let listed = run(
        args(&["keys", "list", "--database", db.to_str().unwrap()]),
        None,
    )
    .await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("\"ci\"") && !listed.contains(&key));
    let revoked = run(
        args(&["keys", "revoke", "ci", "--database", db.to_str().unwrap()]),
        None,
    )
    .await;
    assert!(revoked.status.success());
    let (status, _) = crate::send_text(&ready, &key, text).await;
    assert_eq!(status, 401);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("gw.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the master key file is private");
    }
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_account_bound_to_a_key_sends_without_a_session_header() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let session_file = dir.path().join("shop.session");
    std::fs::write(&session_file, "sessionid=sandbox-session-alice\n").unwrap();

    let refused = run(
        args(&[
            "accounts",
            "add",
            "--name",
            "shop",
            "--session",
            "sandbox-session-alice",
            "--database",
            db,
        ]),
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not on the command line"));
    let added = run(
        args(&[
            "accounts",
            "add",
            "--name",
            "shop",
            "--session",
            &format!("@{}", session_file.display()),
            "--database",
            db,
        ]),
        None,
    )
    .await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = run(args(&["accounts", "list", "--database", db]), None).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("\"shop\"") && !listed.contains("sandbox-session-alice"),
        "{listed}"
    );
    let checked = run(
        args(&[
            "accounts",
            "check",
            "shop",
            "--database",
            db,
            "--sandbox-url",
            &sandbox.base_url(),
        ]),
        None,
    )
    .await;
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let check = crate::json(&checked);
    assert_eq!(
        (check["ok"].as_bool(), check["account"].as_str()),
        (Some(true), Some("shop"))
    );
    let unreachable = run(
        args(&[
            "accounts",
            "check",
            "shop",
            "--database",
            db,
            "--sandbox-url",
            "http://127.0.0.1:9",
        ]),
        None,
    )
    .await;
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "TikTok could not be asked"
    );
    let raw_db = std::fs::read(dir.path().join("gw.sqlite")).unwrap();
    assert!(
        !raw_db.windows(21).any(|w| w == b"sandbox-session-alice"),
        "the session is encrypted at rest"
    );

    let created = run(
        args(&[
            "keys",
            "create",
            "--name",
            "shop-key",
            "--account",
            "shop",
            "--json",
            "--database",
            db,
        ]),
        None,
    )
    .await;
    let key = crate::json(&created)["key"].as_str().unwrap().to_owned();
    let wide = run(
        args(&[
            "keys",
            "create",
            "--name",
            "wide",
            "--any-account",
            "--json",
            "--database",
            db,
        ]),
        None,
    )
    .await;
    assert_eq!(crate::json(&wide)["any_account"], true);
    let listed = run(args(&["keys", "list", "--database", db]), None).await;
    let keys = crate::json(&listed);
    let shop_key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "shop-key")
        .unwrap();
    assert_eq!(
        (&shop_key["accounts"], &shop_key["any_account"]),
        (&serde_json::json!(["shop"]), &serde_json::json!(false))
    );
    let (mut child, ready) = crate::spawn_ready(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        db,
        "--sandbox-url",
        &sandbox.base_url(),
    ])
    .await;
    let url = ready["url"].as_str().unwrap().to_owned();
    let c = &sandbox.handle.seed().conversations[0];
    let body = serde_json::json!({"conversation_id": c.conversation_id, "conversation_short_id": c.conversation_short_id.get(), "text": "from a stored account"});
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(sandbox.handle.messages().len(), 1);
    child.kill().unwrap();
    let _ = child.wait();

    let removed = run(
        args(&["accounts", "remove", "shop", "--database", db]),
        None,
    )
    .await;
    assert!(removed.status.success());
    let again = run(
        args(&["accounts", "remove", "shop", "--database", db]),
        None,
    )
    .await;
    assert_eq!(again.status.code(), Some(1));
}
