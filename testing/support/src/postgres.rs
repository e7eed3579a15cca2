//! A PostgreSQL schema of a test's own. The server is the one
//! `TDM_TEST_POSTGRES_URL` names; by default the local server's `test` database
//! as `postgres` (trust authentication), which `.ci/run` checks is up before
//! the tests run.

use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests use.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `TDM_TEST_POSTGRES_URL`, or [`DEFAULT_URL`].
pub fn server_url() -> String {
    std::env::var("TDM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into())
}

async fn admin() -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            format!(
                "these tests need PostgreSQL at TDM_TEST_POSTGRES_URL (default {DEFAULT_URL}): {e}"
            )
        })?;
    tokio::spawn(conn);
    Ok(client)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new schema, dropped with everything in it when this is dropped.
pub struct PgSchema {
    /// Its name.
    pub name: String,
    /// A database URL whose connections use only this schema.
    pub url: String,
}

impl PgSchema {
    /// Creates a schema with a name no other test uses.
    ///
    /// # Panics
    /// The server cannot be reached (the message says which variable to set).
    pub async fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "tdm_test_{}_{}_{}_{nanos}",
            now_secs(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = admin().await.unwrap_or_else(|e| panic!("{e}"));
        // Schemas a failed run left behind (older than an hour).
        let stale = now_secs().saturating_sub(3600);
        if let Ok(rows) = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tdm_test_%'",
                &[],
            )
            .await
        {
            for row in rows {
                let old: String = row.get(0);
                let made = old
                    .split('_')
                    .nth(2)
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                if made < stale {
                    let _ = client
                        .batch_execute(&format!(
                            "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {old} CASCADE"
                        ))
                        .await;
                }
            }
        }
        if let Err(e) = client.batch_execute(&format!("CREATE SCHEMA {name}")).await {
            panic!("cannot create the test schema {name}: {e}");
        }
        let base = server_url();
        let joiner = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{joiner}options=-csearch_path%3D{name}");
        Self { name, url }
    }

    /// Runs `sql` in this schema and returns the first column of each row as text.
    ///
    /// # Panics
    /// The query fails.
    pub async fn query_text(&self, sql: &str) -> Vec<String> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn);
        let rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's runtime may be shutting down: a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = admin().await {
                    // A failed test can leave a transaction open in a task that
                    // will not run again: give up rather than wait for its locks
                    // (the schema is then dropped by a later run, see `create`).
                    let _ = client
                        .batch_execute(&format!(
                            "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}
