//! `accounts listen NAME on|off` and `accounts add --no-listen`, on the
//! database of a running gateway, which follows the switch.

use std::time::Duration;

use crate::{add_account, args, run, spawn_ready};

/// Each stored account's name and `listen`, as `accounts list` shows them.
async fn listening(db: &str) -> Vec<(String, bool)> {
    let listed = run(args(&["accounts", "list", "--database", db]), None).await;
    assert!(listed.status.success());
    crate::json(&listed)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["listen"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `accounts listen NAME SWITCH`: its exit code and standard error.
async fn switch(db: &str, name: &str, to: &str) -> (Option<i32>, String) {
    let out = run(
        args(&["accounts", "listen", name, to, "--database", db]),
        None,
    )
    .await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the gateway at `url` listens to `n` accounts.
async fn until_listening(url: &str, n: usize) {
    let line = format!("tiktok_dm_accounts_listening {n}\n");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let metrics = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(&line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway does not listen to {n} accounts");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accounts_listening_is_switched_on_and_off_while_the_gateway_runs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = tiktok_dm_test_support::spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let added = add_account(db, "shop", "sandbox-session-alice", &["--no-listen"]).await;
    let said = String::from_utf8_lossy(&added.stderr);
    assert!(added.status.success(), "{said}");
    assert!(said.contains("\"shop\" stored; listening off"), "{said}");
    assert_eq!(listening(db).await, [("shop".to_owned(), false)]);

    let (mut gateway, ready) = spawn_ready(&[
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
    // Past the supervisor's first scan: still nobody listened to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    until_listening(&url, 0).await;
    let alice = sandbox.handle.account("alice").unwrap().uid;
    assert_eq!(sandbox.handle.open_sockets(alice), 0);

    let (code, said) = switch(db, "shop", "on").await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("\"shop\": listening on"), "{said}");
    until_listening(&url, 1).await;
    // A listener counts from its start; its socket opens as it connects.
    for _ in 0..100 {
        if sandbox.handle.open_sockets(alice) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sandbox.handle.open_sockets(alice), 1);
    assert_eq!(listening(db).await, [("shop".to_owned(), true)]);

    let (code, said) = switch(db, "shop", "off").await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("\"shop\": listening off"), "{said}");
    until_listening(&url, 0).await;
    assert_eq!(listening(db).await, [("shop".to_owned(), false)]);
    // Switching to what it already is changes nothing and is no error.
    assert_eq!(switch(db, "shop", "off").await.0, Some(0));

    let (code, said) = switch(db, "nobody", "on").await;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("no stored account named \"nobody\""),
        "{said}"
    );
    let (code, said) = switch(db, "shop", "maybe").await;
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("possible values: on, off"), "{said}");
    assert_eq!(listening(db).await, [("shop".to_owned(), false)]);

    // A replaced session keeps the switch; --no-listen is not needed again.
    let again = add_account(db, "shop", "sandbox-session-alice", &[]).await;
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("\"shop\" stored; listening off"), "{said}");
    gateway.kill().unwrap();
    let _ = gateway.wait();
}
