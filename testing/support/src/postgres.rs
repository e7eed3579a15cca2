//! A PostgreSQL schema of a test's own. The server is the one
//! `TDM_TEST_POSTGRES_URL` names; by default the local server's `test` database
//! as `postgres` (trust authentication), which `.ci/run` checks is up before
//! the tests run.
//!
//! Without a server the PostgreSQL tests are skipped: [`PgSchema::create`]
//! answers `None`, says so on standard error, and the test returns early. With
//! `TDM_REQUIRE_POSTGRES=1` (as `.ci/run` sets) it panics instead.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// The server the tests use.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long a connection to the server may take before the server counts as
/// not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `TDM_TEST_POSTGRES_URL`, or [`DEFAULT_URL`].
pub fn server_url() -> String {
    std::env::var("TDM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into())
}

/// Whether `TDM_REQUIRE_POSTGRES` is set (to anything but empty or `0`): a
/// server that cannot be reached then fails the tests instead of skipping them.
pub fn required() -> bool {
    std::env::var("TDM_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `url` with its password, if it has one, replaced by `***`: in the URL form
/// (`postgres://user:password@host/db?password=...`) and in libpq's key=value
/// form (`host=db password=...`).
pub fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // Up to the last '@': a password with a stray '@' is hidden whole.
        let rest = match rest.rsplit_once('@') {
            Some((creds, host)) => match creds.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => rest.to_owned(),
            },
            None => rest.to_owned(),
        };
        let rest = match rest.split_once('?') {
            Some((path, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .map(|p| match p.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => p.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", params.join("&"))
            }
            None => rest,
        };
        format!("{scheme}://{rest}")
    } else {
        // key=value pairs; a value may be quoted and hold spaces.
        let mut out = String::new();
        let mut rest = url;
        while let Some(at) = rest.find("password") {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let after = from["password".len()..].trim_start();
            let Some(value) = after.strip_prefix('=') else {
                out.push_str("password");
                rest = &from["password".len()..];
                continue;
            };
            out.push_str("password=***");
            let value = value.trim_start();
            rest = match value.strip_prefix('\'') {
                Some(quoted) => {
                    let mut end = quoted.len();
                    let mut escaped = false;
                    for (i, c) in quoted.char_indices() {
                        match c {
                            _ if escaped => escaped = false,
                            '\\' => escaped = true,
                            '\'' => {
                                end = i + 1;
                                break;
                            }
                            _ => {}
                        }
                    }
                    &quoted[end..]
                }
                None => value
                    .find(char::is_whitespace)
                    .map_or("", |end| &value[end..]),
            };
        }
        out.push_str(rest);
        out
    }
}

/// `e` and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

async fn admin() -> Result<tokio_postgres::Client, String> {
    let url = server_url();
    let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
    let (client, conn) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => return Err(chain(&e)),
        Err(_) => {
            return Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()));
        }
    };
    tokio::spawn(conn);
    Ok(client)
}

/// The server answered once in this process.
static REACHED: AtomicBool = AtomicBool::new(false);
/// Why the server could not be reached, once it could not (and never had).
static UNREACHABLE: OnceLock<String> = OnceLock::new();

/// Writes `line` to standard error past the test harness's capture, so that
/// a passing test's skip is seen.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The server cannot be reached: panics if it is required, else says once
/// per process that the PostgreSQL tests are skipped, and for each test that
/// it is.
fn skip(error: &str) -> Option<PgSchema> {
    let url = redacted(&server_url());
    if required() {
        panic!(
            "these tests need PostgreSQL at TDM_TEST_POSTGRES_URL (default {DEFAULT_URL}), \
             which is {url}: {error}; TDM_REQUIRE_POSTGRES=1 is set, so this fails instead of skipping"
        );
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        say(&format!(
            "skipped: PostgreSQL tests (no server at {url}: {error}); to run them start \
             PostgreSQL or set TDM_TEST_POSTGRES_URL, and set TDM_REQUIRE_POSTGRES=1 to make \
             its absence a failure"
        ));
    });
    let current = std::thread::current();
    say(&format!(
        "skipped (no PostgreSQL): {}",
        current.name().unwrap_or("a test")
    ));
    None
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
    /// Creates a schema with a name no other test uses, or `None` when the
    /// server cannot be reached: the test is then skipped (it should return
    /// at once), which this has said on standard error.
    ///
    /// # Panics
    /// The server cannot be reached and `TDM_REQUIRE_POSTGRES=1` is set, or it
    /// was reached earlier in this process (the message says which variable
    /// to set); or the schema cannot be created.
    pub async fn create() -> Option<Self> {
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
        if let Some(error) = UNREACHABLE.get() {
            return skip(error);
        }
        let client = match admin().await {
            Ok(client) => {
                REACHED.store(true, Ordering::Relaxed);
                client
            }
            Err(error) if REACHED.load(Ordering::Relaxed) => panic!(
                "PostgreSQL at {} answered before in this run but not now: {error}",
                redacted(&server_url())
            ),
            Err(error) => return skip(UNREACHABLE.get_or_init(|| error)),
        };
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
        Some(Self { name, url })
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

#[cfg(test)]
mod tests {
    use super::{DEFAULT_URL, redacted};

    #[test]
    fn a_password_never_shows_in_either_form_of_url() {
        for (url, shown) in [
            (DEFAULT_URL, DEFAULT_URL),
            (
                "postgres://gw:hunter2@db:5432/gw?sslmode=require",
                "postgres://gw:***@db:5432/gw?sslmode=require",
            ),
            (
                "postgresql://gw@db/gw?password=hunter2&sslmode=disable",
                "postgresql://gw@db/gw?password=***&sslmode=disable",
            ),
            (
                "host=db user=gw password=hunter2 dbname=gw",
                "host=db user=gw password=*** dbname=gw",
            ),
            (
                "host=db password = 'hun ter\\'2' dbname=gw",
                "host=db password=*** dbname=gw",
            ),
            ("host=db password=hunter2", "host=db password=***"),
            ("postgres://gw:hun@ter2@db/gw", "postgres://gw:***@db/gw"),
        ] {
            assert_eq!(redacted(url), shown);
        }
    }
}
