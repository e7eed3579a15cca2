//! Settings: layers, ranges and the checks between them.
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let mut l = Layers::default();
    l.file(
        "gw.toml",
        "listen = \"127.0.0.1:9000\"\nmax_attempts = 3\nwait_for_delivery_secs = 5\nmax_waiting_sends = 0\n",
    )
    .unwrap();
    l.env(env(&[
        ("TIKTOK_DM_MAX_ATTEMPTS", "4"),
        ("TIKTOK_DM_SESSION", "ignored here"),
        ("PATH", "/bin"),
    ]))
    .unwrap();
    l.flag("listen", Some("127.0.0.1:0".into()));
    l.flag("database", None);
    let c = l.resolve().unwrap();
    assert_eq!(c.listen, "127.0.0.1:0");
    assert_eq!(c.settings.max_attempts, 4);
    assert_eq!(c.settings.wait_for_delivery, Duration::from_secs(5));
    assert_eq!(c.settings.max_waiting_sends, 0);
    assert_eq!(c.database, "tiktok-dm.sqlite");
    assert_eq!(c.settings.pacing, Pacing::TIKTOK_DEFAULT, "TikTok is paced");
}

#[test]
fn the_config_debugs_without_the_database_password() {
    let mut l = Layers::default();
    l.env(env(&[(
        "TIKTOK_DM_DATABASE",
        "postgres://gw:s3cret-pw@db/gw?sslmode=verify-full",
    )]))
    .unwrap();
    let c = l.resolve().unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("postgres://gw:***@db/gw"), "{shown}");
}

#[test]
fn tiktok_hosts_choose_the_sg_pair_and_refuse_others() {
    let mut l = Layers::default();
    assert_eq!(l.resolve().unwrap().settings.endpoints, Endpoints::tiktok());
    l.env(env(&[("TIKTOK_DM_TIKTOK_HOSTS", "sg")])).unwrap();
    let api = l.resolve().unwrap().settings.endpoints.api_url;
    assert_eq!(api, "https://im-api-sg.tiktok.com");
    let mut with_sandbox = Layers::default();
    with_sandbox
        .env(env(&[("TIKTOK_DM_TIKTOK_HOSTS", "sg")]))
        .unwrap();
    with_sandbox.flag("sandbox_url", Some("http://127.0.0.1:1".into()));
    let err = with_sandbox.resolve().unwrap_err().to_string();
    assert!(err.contains("give one of them"), "{err}");
    l.flag("tiktok_hosts", Some("eu".into()));
    let err = l.resolve().unwrap_err().to_string();
    assert!(
        err.contains("tiktok-hosts = \"eu\"") && err.contains("global or sg"),
        "{err}"
    );
}

#[test]
fn a_sandbox_is_not_paced_unless_asked() {
    let mut l = Layers::default();
    l.flag("sandbox_url", Some("http://127.0.0.1:1".into()));
    assert_eq!(l.resolve().unwrap().settings.pacing, Pacing::OFF);
    l.flag("pacing_min_interval_ms", Some("250".into()));
    assert_eq!(
        l.resolve().unwrap().settings.pacing.min_interval,
        Duration::from_millis(250)
    );
}

#[test]
fn bad_values_name_their_origin() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            "max_attempts = 0",
            &[],
            "gw.toml: max_attempts = \"0\": expected a whole number from 1 to 100",
        ),
        ("colour = 1", &[], "gw.toml: unknown setting \"colour\""),
        (
            "listen = [1]",
            &[],
            "gw.toml: listen must be a string or a number, not a array",
        ),
        (
            "admin_key = \"x\"",
            &[],
            "admin_key must not be written in a file",
        ),
        ("not toml", &[], "gw.toml: "),
        (
            "",
            &[("TIKTOK_DM_MAX_ATTEMPT", "3")],
            "environment variable TIKTOK_DM_MAX_ATTEMPT: unknown setting",
        ),
        (
            "",
            &[("TIKTOK_DM_TRANSPORT", "pigeon")],
            "TIKTOK_DM_TRANSPORT = \"pigeon\": expected auto, ws or http",
        ),
        (
            "",
            &[("TIKTOK_DM_LISTEN", "localhost")],
            "expected an address and port",
        ),
        (
            "",
            &[("TIKTOK_DM_ADMIN_KEY", "short")],
            "at least 16 characters",
        ),
        (
            "admin_key_sha256 = \"abc\"",
            &[],
            "expected 64 hexadecimal characters",
        ),
        (
            "",
            &[("TIKTOK_DM_SANDBOX_URL", "not a url")],
            "TIKTOK_DM_SANDBOX_URL = \"not a url\"",
        ),
    ];
    for (file, vars, expected) in cases {
        let mut l = Layers::default();
        let err = l
            .file("gw.toml", file)
            .and_then(|()| l.env(env(vars)))
            .and_then(|()| l.resolve().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{file:?} {vars:?}: {err}");
    }
}

#[test]
fn the_admin_key_is_kept_only_as_its_hash() {
    let mut l = Layers::default();
    l.env(env(&[("TIKTOK_DM_ADMIN_KEY", "a-long-enough-admin-key")]))
        .unwrap();
    let c = l.resolve().unwrap();
    assert_eq!(
        c.settings.admin_key_hash,
        Some(crate::secrets::hash_key("a-long-enough-admin-key"))
    );
    assert!(!format!("{c:?}").contains("a-long-enough-admin-key"));
    let hex = tiktok_dm_proto::access_key::hex(&crate::secrets::hash_key("k"));
    let mut l = Layers::default();
    l.file("f", &format!("admin_key_sha256 = \"{hex}\""))
        .unwrap();
    assert_eq!(
        l.resolve().unwrap().settings.admin_key_hash,
        Some(crate::secrets::hash_key("k"))
    );
}

#[test]
fn a_webhook_max_age_longer_than_the_event_retention_is_refused() {
    let mut l = Layers::default();
    l.file(
        "gw.toml",
        "event_retention_days = 1\nwebhook_max_age_hours = 24\n",
    )
    .unwrap();
    let c = l.resolve().unwrap();
    assert_eq!(c.settings.webhook_max_age, c.settings.event_retention);
    l.env(env(&[("TIKTOK_DM_WEBHOOK_MAX_AGE_HOURS", "25")]))
        .unwrap();
    let err = l.resolve().unwrap_err().to_string();
    assert!(
        err.contains("webhook_max_age_hours (25)")
            && err.contains("event_retention_days (1, 24 hours)"),
        "{err}"
    );
    let mut defaults = Layers::default();
    defaults.flag("webhook_max_age_hours", Some("720".into()));
    let err = defaults.resolve().unwrap_err().to_string();
    assert!(err.contains("event_retention_days (7, 168 hours)"), "{err}");
    defaults.flag("event_retention_days", Some("30".into()));
    assert!(defaults.resolve().is_ok(), "30 days keep a 720 h window");
}
