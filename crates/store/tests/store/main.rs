//! One test suite for every store backend (matrix-sdk's pattern): each backend
//! instantiates `store_suite!` with a function that opens a fresh store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;

mod sqlite {
    use tiktok_dm_store::SqliteStore;

    /// A fresh database file per test; the directory lives as long as the store.
    pub async fn open() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("gateway.sqlite").to_str().unwrap())
            .await
            .unwrap();
        (store, dir)
    }

    crate::store_suite!(open);

    #[tokio::test]
    async fn reopening_the_file_keeps_everything_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let key = crate::suite::new_key(&store, "durable", None).await;
        drop(store);
        let again = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let found = tiktok_dm_store::Store::api_key_by_hash(&again, &crate::suite::hash("durable"))
            .await
            .unwrap();
        assert_eq!(found.unwrap().id, key.id);
    }
}
