//! What a PostgreSQL store hears from other processes on the database
//! (`LISTEN`): key changes, which empty its key cache, and ended messages.

use tiktok_dm_store::PostgresStore;

use crate::postgres::open;

/// A key found is kept in memory while the store hears of key changes; a
/// revocation by another store (another gateway, or the CLI) reaches it at
/// once, and so does one made while it could not hear (its listening
/// connection lost): nothing is served from memory then.
#[tokio::test]
async fn a_key_revoked_elsewhere_is_seen_revoked_at_once() {
    use tiktok_dm_store::Store as _;
    let Some((_store, schema)) = open().await else {
        return;
    };
    // Its listening connection, and only it, can be told apart by name.
    let app = format!("tdm_{}_first", schema.name);
    let first = PostgresStore::open(&format!("{}&application_name={app}", schema.url))
        .await
        .unwrap();
    let second = PostgresStore::open(&schema.url).await.unwrap();
    let hash = crate::suite::hash("k");
    crate::suite::new_key(&second, "k", None).await;
    // Listening is up well within this; the second lookup is from memory.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..2 {
        let key = first.api_key_by_hash(&hash).await.unwrap().unwrap();
        assert!(key.revoked_at.is_none());
    }
    // Served from memory: a change nobody notifies is not seen.
    let unheard =
        "ALTER TABLE api_keys DISABLE TRIGGER api_keys_changed; UPDATE api_keys SET prefix = 'x'";
    schema
        .query_text(&format!("{unheard}; SELECT 'done'"))
        .await;
    let kept = first.api_key_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(
        kept.prefix, "tdm_k",
        "the second lookup was not served from memory"
    );
    schema
        .query_text("ALTER TABLE api_keys ENABLE TRIGGER api_keys_changed; SELECT 'done'")
        .await;
    assert!(second.revoke_api_key("k", 2_000).await.unwrap());
    let seen = revoked_within(&first, &hash, 2_000).await;
    assert!(seen, "the revocation was not heard within 2 s");

    // Listening lost: what was kept is dropped, and a revocation made
    // meanwhile is read from the database.
    crate::suite::new_key(&second, "k2", None).await;
    let hash2 = crate::suite::hash("k2");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(first.api_key_by_hash(&hash2).await.unwrap().is_some());
    let ended = schema
        .query_text(&format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE application_name = '{app} (listen)'"
        ))
        .await;
    assert!(ended.contains(&"true".to_owned()), "{ended:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(second.revoke_api_key("k2", 3_000).await.unwrap());
    let key = first.api_key_by_hash(&hash2).await.unwrap().unwrap();
    assert_eq!(key.revoked_at, Some(3_000));
}

/// Whether `store` reads the key `hash` revoked within `ms` milliseconds.
async fn revoked_within(store: &PostgresStore, hash: &[u8; 32], ms: u64) -> bool {
    use tiktok_dm_store::Store as _;
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while std::time::Instant::now() < until {
        let key = store.api_key_by_hash(hash).await.unwrap().unwrap();
        if key.revoked_at.is_some() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}

/// A message ending in one store (sent, alone or in a group, or failed) is
/// heard by another store on the database, by its request id, so a gateway
/// waiting to answer a send another gateway delivered hears of it at once.
#[tokio::test]
async fn messages_ended_in_one_store_are_heard_in_another() {
    use tiktok_dm_store::{Enqueued, Kind, State, Store as _};
    let Some((first, schema)) = open().await else {
        return;
    };
    let second = PostgresStore::open(&schema.url).await.unwrap();
    let mut heard = first.outcomes().unwrap();
    let key = crate::suite::new_key(&second, "k", None).await.id;
    // Listening is up well within this.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut claims = Vec::new();
    for i in 0..5 {
        let mut r = crate::suite::request(&format!("e{i}"), key, None, &[Kind::Text]);
        r.claim_first_ms = Some(60_000);
        match second.enqueue(r, &[], 10).await.unwrap() {
            Enqueued::Accepted {
                claimed: Some(m), ..
            } => claims.push(m.claim()),
            other => panic!("{other:?}"),
        }
    }
    let failed = claims.pop().unwrap();
    let marks: Vec<_> = claims
        .into_iter()
        .map(|claim| {
            let second = second.clone();
            tokio::spawn(async move { second.mark_sent(claim, "s", "ws", 20, None).await })
        })
        .collect();
    for m in marks {
        assert!(m.await.unwrap().unwrap().applied);
    }
    let error = crate::suite::failure(tiktok_dm_store::FailureCode::SessionRejected);
    let ended = second.finish(failed, State::Failed, &error, 30, None).await;
    assert!(ended.unwrap().applied);
    // Every store on the database hears every schema's notifications:
    // other tests' ids are passed over.
    let wanted: std::collections::BTreeSet<String> = (0..5).map(|i| format!("e{i}")).collect();
    let mut ended = std::collections::BTreeSet::new();
    while ended != wanted {
        let id = tokio::time::timeout(std::time::Duration::from_secs(2), heard.recv())
            .await
            .expect("an ended message was not heard within 2 s")
            .unwrap();
        if wanted.contains(&id) {
            ended.insert(id);
        }
    }
}

/// A lane wanted in one schema is heard by every store of that schema (the
/// wanting one too) and by none of another schema on the same database:
/// there it would be taken as a stray lease.
#[tokio::test]
async fn a_lane_wanted_is_heard_in_its_own_schema_only() {
    use tiktok_dm_store::Store as _;
    let Some((first, schema)) = open().await else {
        return;
    };
    let Some((other, _other_schema)) = open().await else {
        return;
    };
    let second = PostgresStore::open(&schema.url).await.unwrap();
    let mut heard = second.lanes_wanted().expect("PostgreSQL hears lanes");
    let mut own = first.lanes_wanted().unwrap();
    let mut elsewhere = other.lanes_wanted().unwrap();
    // Listening is up well within this.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let lane = format!("session:{}", schema.name);
    first.want_lane(&lane).await.unwrap();
    for (name, heard) in [("another store", &mut heard), ("its own", &mut own)] {
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), heard.recv())
            .await
            .unwrap_or_else(|_| panic!("{name} did not hear the lane within 2 s"))
            .unwrap();
        assert_eq!(got, lane);
    }
    // Other tests' schemas may want lanes meanwhile, never this one.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Ok(got) = tokio::time::timeout_at(deadline, elsewhere.recv()).await {
        assert_ne!(got.unwrap(), lane, "heard in another schema");
    }
}
