//! The suite against PostgreSQL, each test in a schema of its own
//! ([`PgSchema`]: the server `TDM_TEST_POSTGRES_URL` names, by default the
//! local one).

use tiktok_dm_store::PostgresStore;
use tiktok_dm_test_support::postgres::PgSchema;

/// A fresh store in a new schema.
pub async fn open() -> (PostgresStore, PgSchema) {
    let schema = PgSchema::create().await;
    let store = PostgresStore::open(&schema.url).await.unwrap();
    (store, schema)
}

crate::store_suite!(open);

#[tokio::test]
async fn a_second_open_of_the_same_database_finds_the_migrations_done_and_the_data() {
    use tiktok_dm_store::Store as _;
    let (store, schema) = open().await;
    let key = crate::suite::new_key(&store, "durable", None).await;
    let again = PostgresStore::open(&schema.url).await.unwrap();
    let found = again
        .api_key_by_hash(&crate::suite::hash("durable"))
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, key.id);
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_server_is_a_clear_error_without_the_password() {
    let e = PostgresStore::open("postgres://user:hunter2@127.0.0.1:99999/db")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("not valid"), "{e}");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let e = PostgresStore::open("postgres://user:hunter2@127.0.0.1:9/db")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().starts_with("database error: "), "{e}");
}

#[tokio::test]
async fn any_store_picks_the_backend_by_the_urls_scheme() {
    use tiktok_dm_store::{AnyStore, Store as _};
    let (_store, schema) = open().await;
    let pg = AnyStore::open(&schema.url).await.unwrap();
    assert!(matches!(pg, AnyStore::Postgres(_)));
    let key = crate::suite::new_key(&pg, "through-any", None).await;
    assert_eq!(pg.list_api_keys().await.unwrap(), vec![key]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.sqlite");
    let sqlite = AnyStore::open(file.to_str().unwrap()).await.unwrap();
    assert!(matches!(sqlite, AnyStore::Sqlite(_)));
    assert!(sqlite.list_api_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_url_that_requires_tls_is_refused_since_the_store_speaks_plain_tcp() {
    let schema = PgSchema::create().await;
    let e = PostgresStore::open(&format!("{}&sslmode=require", schema.url))
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("database error: "), "{e}");
    eprintln!("{e}");
}
