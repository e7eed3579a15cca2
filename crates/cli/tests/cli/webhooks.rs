//! `tiktok-dm webhooks add|list|remove` on a database file.

use crate::{args, json, run_with_env};

/// base64 of 32 bytes of 1: the master key that seals webhook secrets. The
/// public URL is an address literal: nothing is resolved or contacted.
const MASTER: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[tokio::test]
async fn webhooks_are_added_listed_and_removed_and_the_secret_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.sqlite");
    let db = db.to_str().unwrap();
    let env = [("TIKTOK_DM_MASTER_KEY", MASTER)];
    let created = run_with_env(
        args(&[
            "keys",
            "create",
            "--name",
            "shop",
            "--any-account",
            "--json",
            "--database",
            db,
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

    let add = |url: &'static str, extra: &'static [&'static str]| {
        let mut a = vec![
            "webhooks",
            "add",
            "--key",
            "shop",
            "--url",
            url,
            "--event",
            "message.received",
            "--database",
            db,
        ];
        a.extend_from_slice(extra);
        run_with_env(args(&a), None, &env)
    };
    let added = add("https://93.184.215.14/tiktok", &[]).await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let webhook = json(&added);
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{webhook}");
    let id = webhook["id"].as_str().unwrap().to_owned();

    let refused = add("http://127.0.0.1:9/x", &[]).await;
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a private URL is refused without --allow-private"
    );
    let allowed = add("http://127.0.0.1:9/x", &["--allow-private"]).await;
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    let listed = run_with_env(
        args(&["webhooks", "list", "--key", "shop", "--database", db]),
        None,
        &env,
    )
    .await;
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(
        text.contains(&id) && !text.contains(&secret),
        "listed without secrets: {text}"
    );

    let removed = run_with_env(
        args(&["webhooks", "remove", "--key", "shop", &id, "--database", db]),
        None,
        &env,
    )
    .await;
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let again = run_with_env(
        args(&["webhooks", "remove", "--key", "shop", &id, "--database", db]),
        None,
        &env,
    )
    .await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no webhook"));
}
