//! A lost or wrong master key (issue 17, fault 9): the database records a check
//! value sealed with its key, and `serve` and `accounts add` refuse another
//! key, or a missing key file, naming the fix, instead of making a new key
//! under which every stored account fails as `session_rejected`.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use tiktok_dm_gateway::secrets::{SealContext, Vault};
use tiktok_dm_store::{SqliteStore, Store as _};
use tiktok_dm_test_support::postgres::PgSchema;

use crate::{args, run, run_with_env};

/// base64 of 32 bytes of 1, and of 2: two master keys.
const KEY_ONE: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_TWO: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Starts `serve` with `args` and `env`: its ready line, or (when it exits
/// first) what it wrote to stderr.
async fn serve(args: &[&str], env: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let mut child = crate::command()
        .arg("serve")
        .args(args)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sandbox-url",
            "http://127.0.0.1:1",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // An exit closes stdout: the line is then empty.
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        if line.is_empty() {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success());
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        } else {
            child.kill().unwrap();
            let _ = child.wait();
            Ok(serde_json::from_str(&line).unwrap())
        }
    })
    .await
    .unwrap()
}

/// `accounts add --name NAME` with a sandbox-style session, on `db`.
async fn add_account(db: &str, name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session");
    std::fs::write(&file, "sandbox-session-alice").unwrap();
    let session = format!("@{}", file.display());
    let argv = args(&[
        "accounts",
        "add",
        "--name",
        name,
        "--session",
        &session,
        "--database",
        db,
    ]);
    run_with_env(argv, None, env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_lost_key_file_or_another_key_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    let key_file = dir.path().join("gw.key");
    let backup = dir.path().join("backup.key");
    assert!(add_account(db, "shop", &[]).await.status.success());
    std::fs::copy(&key_file, &backup).unwrap();
    let original = std::fs::read_to_string(&key_file).unwrap();

    std::fs::remove_file(&key_file).unwrap();
    let refused = serve(&["--database", db], &[]).await.unwrap_err();
    assert!(
        refused.contains(&format!(
            "master key file {} is missing",
            key_file.display()
        )) && refused.contains("Restore the file from a backup")
            && refused.contains("TIKTOK_DM_MASTER_KEY")
            && refused.contains("DELETE FROM accounts"),
        "{refused}"
    );
    assert!(!key_file.exists(), "no new key file is made");

    let refused = serve(&["--database", db], &[("TIKTOK_DM_MASTER_KEY", KEY_TWO)])
        .await
        .unwrap_err();
    assert!(
        refused.contains(
            "the master key in TIKTOK_DM_MASTER_KEY is not the key this database was set up with"
        ) && refused.contains("set TIKTOK_DM_MASTER_KEY to that key, or unset it"),
        "{refused}"
    );
    assert!(!refused.contains(KEY_TWO), "the key is never shown");

    // A key file made again by hand (or by an earlier version) is refused too.
    std::fs::copy(&backup, &key_file).unwrap();
    std::fs::write(&key_file, format!("{KEY_ONE}\n")).unwrap();
    let refused = serve(&["--database", db], &[]).await.unwrap_err();
    assert!(
        refused.contains(&format!(
            "the master key in {} is not the key",
            key_file.display()
        )) && refused.contains("put that key file back"),
        "{refused}"
    );
    assert!(!refused.contains(KEY_ONE) && !refused.contains(original.trim()));

    std::fs::write(&key_file, &original).unwrap();
    let ready = serve(&["--database", db], &[]).await.unwrap();
    assert!(ready["url"].is_string(), "the restored key starts: {ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_add_with_another_key_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    assert!(add_account(db, "shop", &[]).await.status.success());
    let refused = add_account(db, "other", &[("TIKTOK_DM_MASTER_KEY", KEY_TWO)]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("TIKTOK_DM_MASTER_KEY is not the key this database was set up with"),
        "{stderr}"
    );
    let listed = run(args(&["accounts", "list", "--database", db]), None).await;
    let names: Vec<String> = crate::json(&listed)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["shop"]);
}

/// A database made before key checks has no check value: the key must open
/// its stored accounts, and once it does its check value is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_key_checks_is_checked_against_its_stored_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.sqlite");
    let db = db.to_str().unwrap();
    {
        let store = SqliteStore::open(db).await.unwrap();
        let sealed = Vault::from_key(&[1; 32])
            .seal(b"sandbox-session-alice", SealContext::Account("shop"))
            .unwrap();
        store.put_account("shop", &sealed, 1).await.unwrap();
        assert_eq!(store.key_check().await.unwrap(), None);
    }
    let refused = serve(&["--database", db], &[("TIKTOK_DM_MASTER_KEY", KEY_TWO)])
        .await
        .unwrap_err();
    assert!(
        refused.contains("is not the key this database was set up with"),
        "{refused}"
    );
    let ready = serve(&["--database", db], &[("TIKTOK_DM_MASTER_KEY", KEY_ONE)]).await;
    assert!(ready.is_ok(), "{ready:?}");
    let store = SqliteStore::open(db).await.unwrap();
    assert!(store.key_check().await.unwrap().is_some(), "recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_postgres_refuses_another_master_key() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let first = serve(
        &["--database", &schema.url],
        &[("TIKTOK_DM_MASTER_KEY", KEY_ONE)],
    )
    .await;
    assert!(first.is_ok(), "{first:?}");
    let refused = serve(
        &["--database", &schema.url],
        &[("TIKTOK_DM_MASTER_KEY", KEY_TWO)],
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains(
            "the master key in TIKTOK_DM_MASTER_KEY is not the key this database was set up with"
        ),
        "{refused}"
    );
    let again = serve(
        &["--database", &schema.url],
        &[("TIKTOK_DM_MASTER_KEY", KEY_ONE)],
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
}
