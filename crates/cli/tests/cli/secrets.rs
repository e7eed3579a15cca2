//! Nothing secret reaches logs or answers: `serve` runs at the most verbose log
//! level with planted sessions and keys through sends, failures and admin calls,
//! and neither its log nor any answer contains one.

use std::io::Read as _;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::{args, json as output_json, run};

#[tokio::test(flavor = "multi_thread")]
async fn planted_sessions_and_keys_appear_in_no_log_line_and_no_answer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let planted = format!("planted-session-{}", std::process::id());
    let unknown = format!("planted-unknown-session-{}", std::process::id());
    let mut seed = tiktok_dm_sandbox::Seed::default_seed().unwrap();
    seed.accounts[0].session = planted.clone();
    let sandbox = tiktok_dm_test_support::spawn_sandbox_with(seed).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let session_file = dir.path().join("shop.session");
    std::fs::write(&session_file, &planted).unwrap();
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
    assert!(added.status.success());
    let created = run(
        args(&[
            "keys",
            "create",
            "--name",
            "k",
            "--account",
            "shop",
            "--json",
            "--database",
            db,
        ]),
        None,
    )
    .await;
    let key = output_json(&created)["key"].as_str().unwrap().to_owned();
    let admin_key = format!("planted-admin-key-{}", std::process::id());
    let wrong_key = format!("tdm_planted-wrong-key-{}", std::process::id());

    let log_path = dir.path().join("serve.log");
    let mut child = crate::command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            db,
            "--sandbox-url",
            &sandbox.base_url(),
        ])
        .env("TIKTOK_DM_LOG", "trace")
        .env("TIKTOK_DM_ADMIN_KEY", &admin_key)
        .env("TIKTOK_DM_WAIT_FOR_DELIVERY_SECS", "2")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let url = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let http = reqwest::Client::new();
    let c0 = &sandbox.handle.seed().conversations[0];
    let c1 = &sandbox.handle.seed().conversations[1];
    let body = |c: &tiktok_dm_sandbox::Conversation, text: &str| json!({"conversation_id": c.conversation_id.to_string(), "conversation_short_id": c.conversation_short_id.get(), "text": text});
    let mut answers = Vec::new();
    let send = |key: String, session: Option<String>, body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut req = http
                .post(format!("{url}/v1/messages"))
                .bearer_auth(key)
                .json(&body);
            if let Some(s) = session {
                req = req.header("x-tiktok-session", s);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let cases = [
        (
            key.clone(),
            Some(planted.clone()),
            body(c0, "with the session header"),
            200,
        ),
        (
            key.clone(),
            None,
            json!({"account": "shop", "conversation_id": c0.conversation_id.to_string(), "conversation_short_id": c0.conversation_short_id.get(), "text": "stored"}),
            200,
        ),
        (
            wrong_key.clone(),
            Some(planted.clone()),
            body(c0, "wrong key"),
            401,
        ),
        (
            key.clone(),
            Some(unknown.clone()),
            body(c0, "unknown session"),
            422,
        ),
        (
            key.clone(),
            Some(planted.clone()),
            body(c1, "first request"),
            200,
        ),
        (
            key.clone(),
            Some(planted.clone()),
            body(c1, "second request: 7193"),
            422,
        ),
        (
            key.clone(),
            Some(format!("{planted};;;=")),
            body(c0, "malformed session"),
            400,
        ),
    ];
    for (k, s, b, expected) in cases {
        let (status, text) = send(k, s, b).await;
        assert_eq!(status, expected, "{text}");
        answers.push(text);
    }
    sandbox.handle.server_error(50);
    let (status, text) = send(
        key.clone(),
        Some(planted.clone()),
        body(c0, "upstream failing"),
    )
    .await;
    assert!(status == 202 || status == 502, "{status} {text}");
    answers.push(text);
    sandbox.handle.clear_faults();
    for (method, path, payload) in [
        (reqwest::Method::POST, "/v1/admin/accounts/shop/check", None),
        (
            reqwest::Method::PUT,
            "/v1/admin/accounts/other",
            Some(json!({"session": planted})),
        ),
        (reqwest::Method::GET, "/v1/admin/accounts", None),
        (reqwest::Method::GET, "/v1/admin/keys", None),
    ] {
        let mut req = http
            .request(method, format!("{url}{path}"))
            .bearer_auth(&admin_key);
        if let Some(p) = payload {
            req = req.json(&p);
        }
        answers.push(req.send().await.unwrap().text().await.unwrap());
    }
    answers.push(
        http.get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    child.kill().unwrap();
    let _ = child.wait();

    let mut log = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let ours = log.lines().filter(|l| l.contains("tiktok_dm_")).count();
    assert!(
        ours >= 15,
        "debug logging of the gateway was on: {ours} lines of ours in\n{log}"
    );
    for secret in [&planted, &unknown, &key, &admin_key, &wrong_key] {
        let hits: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .take(3)
            .collect();
        assert!(hits.is_empty(), "a secret is in the log: {hits:#?}");
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "a secret is in an answer: {answer}"
            );
        }
    }
}

/// `--help` names the environment variables an option reads but not their
/// values: a database URL may carry a password.
#[tokio::test]
async fn help_does_not_print_the_database_url_from_the_environment() {
    let password = format!("hunter2-{}", std::process::id());
    let url = format!("postgres://gw:{password}@db.example/gw");
    for command in [
        &["keys", "create", "--help"][..],
        &["keys", "list", "--help"],
        &["keys", "revoke", "--help"],
        &["accounts", "add", "--help"],
        &["accounts", "list", "--help"],
        &["accounts", "check", "--help"],
        &["accounts", "listen", "--help"],
        &["accounts", "remove", "--help"],
    ] {
        let out = crate::run_with_env(args(command), None, &[("TIKTOK_DM_DATABASE", &url)]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command:?}");
        assert!(
            text.contains("[env: TIKTOK_DM_DATABASE]"),
            "{command:?}: {text}"
        );
        assert!(
            !text.contains(&password),
            "{command:?} printed the password"
        );
    }
}
