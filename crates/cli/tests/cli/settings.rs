//! Every setting of the README's table is taken from a config file, from a
//! `TIKTOK_DM_*` variable and as a flag, and takes effect; `serve` starts with
//! all of them set by file, and by environment.

use tiktok_dm_gateway::config::{Layers, SETTINGS};

use crate::spawn_ready_with_env;

const README: &str = include_str!("../../../../README.md");

/// 64 hex digits: an `admin_key_sha256`.
const HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// A value other than the default for every setting (each valid on its own).
const VALUES: &[(&str, &str)] = &[
    ("listen", "127.0.0.1:0"),
    ("database", "other.sqlite"),
    ("sandbox_url", "http://127.0.0.1:1"),
    ("tiktok_hosts", "sg"),
    ("transport", "http"),
    ("wait_for_delivery_secs", "7"),
    ("max_waiting_sends", "5"),
    ("image_limit_bytes", "2048"),
    ("image_memory_mib", "300"),
    ("request_memory_mib", "300"),
    ("max_attempts", "9"),
    ("delivery_deadline_secs", "3600"),
    ("retention_days", "7"),
    ("listen_accounts", "false"),
    ("listen_poll_secs", "60"),
    ("event_retention_days", "3"),
    ("allow_private_webhooks", "true"),
    ("webhook_timeout_ms", "2500"),
    ("webhook_max_age_hours", "12"),
    ("webhook_concurrency", "4"),
    ("retry_max_delay_ms", "5000"),
    ("lease_secs", "33"),
    ("owner_lease_secs", "21"),
    ("pacing_min_interval_ms", "250"),
    ("pacing_jitter_ms", "125"),
    ("session_idle_secs", "77"),
    ("request_timeout_secs", "90"),
    ("send_timeout_ms", "2500"),
    ("max_connections", "64"),
    ("header_timeout_secs", "5"),
    ("idle_timeout_secs", "45"),
    ("max_requests_per_key", "8"),
    ("master_key_file", "other.key"),
    ("admin_key_sha256", HASH),
    ("admin_key", "a-long-enough-admin-key"),
];

/// The names in the first column of the README's settings table.
fn readme_settings() -> Vec<String> {
    let table = README
        .split_once("| Setting | Meaning |")
        .expect("the README has a settings table")
        .1;
    let mut names = Vec::new();
    for row in table.lines().skip(1) {
        let Some(cells) = row.strip_prefix('|') else {
            if !row.trim().is_empty() || !names.is_empty() {
                break;
            }
            continue;
        };
        if cells.starts_with("---") {
            continue;
        }
        let first = cells.split('|').next().unwrap_or_default();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    names
}

fn value(name: &str) -> &'static str {
    VALUES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no test value for the README's setting {name}; add one"))
        .1
}

/// How a setting reaches the layers.
#[derive(Clone, Copy, Debug)]
enum Source {
    File,
    Env,
    Flag,
}

fn layers_with(source: Source, name: &str, value: &str) -> Result<Layers, String> {
    let mut layers = Layers::default();
    let set = match source {
        Source::File => layers.file("gw.toml", &format!("{name} = {value:?}\n")),
        Source::Env => layers.env([(
            format!("TIKTOK_DM_{}", name.to_ascii_uppercase()),
            value.to_owned(),
        )]),
        Source::Flag => {
            layers.flag(name, Some(value.to_owned()));
            Ok(())
        }
    };
    set.map(|()| layers).map_err(|e| e.to_string())
}

#[test]
fn every_setting_of_the_readme_is_taken_from_a_file_the_environment_and_a_flag() {
    let documented = readme_settings();
    assert!(documented.len() >= 20, "{documented:?}");
    for (name, _) in SETTINGS {
        assert!(
            documented.iter().any(|d| d == name) || *name == "admin_key",
            "serve knows {name}, which the README's table does not list"
        );
    }
    let default = format!("{:?}", Layers::default().resolve().unwrap());
    let mut refused = Vec::new();
    for name in &documented {
        let value = value(name);
        for source in [Source::File, Source::Env, Source::Flag] {
            let resolved = layers_with(source, name, value).and_then(|l| {
                l.resolve()
                    .map(|c| format!("{c:?}"))
                    .map_err(|e| e.to_string())
            });
            match resolved {
                Ok(shown) if shown != default => {}
                Ok(_) => refused.push(format!("{source:?} {name} = {value}: no effect")),
                Err(e) => refused.push(format!("{source:?} {name} = {value}: {e}")),
            }
        }
    }
    assert!(refused.is_empty(), "{refused:#?}");
}

/// The file text (or the variables) for every setting at once: the database
/// and key file in `dir`, a sandbox instead of TikTok's hosts.
fn all_at_once(dir: &std::path::Path) -> Vec<(String, String)> {
    let path = |file: &str| dir.join(file).to_str().unwrap().to_owned();
    readme_settings()
        .into_iter()
        .filter(|name| name != "tiktok_hosts")
        .map(|name| {
            let value = match name.as_str() {
                "database" => path("gw.sqlite"),
                "master_key_file" => path("gw.key"),
                other => value(other).to_owned(),
            };
            (name, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_with_every_setting_given_by_file_or_by_environment() {
    for by_file in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let settings = all_at_once(dir.path());
        let file = dir.path().join("gateway.toml");
        let text: String = settings
            .iter()
            .map(|(name, value)| format!("{name} = {value:?}\n"))
            .collect();
        std::fs::write(&file, text).unwrap();
        let mut env: Vec<(String, String)> = settings
            .iter()
            .map(|(name, value)| {
                let var = format!("TIKTOK_DM_{}", name.to_ascii_uppercase());
                (var, value.clone())
            })
            .collect();
        let argv: Vec<&str> = if by_file {
            env.clear();
            vec!["serve", "--config", file.to_str().unwrap()]
        } else {
            vec!["serve"]
        };
        env.push(("TIKTOK_DM_ADMIN_KEY".into(), value("admin_key").into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mut child, ready) = spawn_ready_with_env(&argv, &env).await;
        assert!(ready["url"].as_str().is_some(), "{ready}");
        child.kill().unwrap();
        let _ = child.wait();
    }
}
