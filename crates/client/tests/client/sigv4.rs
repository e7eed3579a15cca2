//! The signer against every case of the published AWS SigV4 test suite
//! (header signing): canonical request, string to sign and signature.

use std::path::{Path, PathBuf};

use tiktok_dm_client::proto::time::days_from_civil;
use tiktok_dm_client::sigv4::{
    CanonicalInput, Scope, amz_date, canonical_request, sha256_hex, signature, string_to_sign,
};

struct Case {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses `request.txt`: request line, headers (indented lines continue the
/// previous value), blank line, body.
fn parse_request(raw: &[u8]) -> Case {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_owned(), b.as_bytes().to_vec()),
        None => (text.trim_end_matches('\n').to_owned(), Vec::new()),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let method = request_line.split(' ').next().unwrap().to_owned();
    let target = request_line[method.len() + 1..request_line.rfind(' ').unwrap()].to_owned();
    let (path, query) = target
        .split_once('?')
        .map_or((target.clone(), String::new()), |(p, q)| {
            (p.to_owned(), q.to_owned())
        });
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = headers.last_mut().unwrap();
            last.1 = format!("{} {}", last.1, line.trim());
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Case {
        method,
        path,
        query,
        headers,
        body,
    }
}

fn unix_secs(timestamp: &str) -> u64 {
    // "2015-08-30T12:36:00Z"
    let n = |r: std::ops::Range<usize>| timestamp[r].parse::<i64>().unwrap();
    let days = days_from_civil(n(0..4), n(5..7) as u32, n(8..10) as u32);
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/aws-sigv4")
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

#[test]
fn every_header_signing_case_of_the_aws_suite_is_reproduced() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut checked = 0;
    for dir in &dirs {
        if !dir.join("header-signature.txt").exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let ctx: serde_json::Value = serde_json::from_str(&read(dir, "context.json")).unwrap();
        let case = parse_request(&std::fs::read(dir.join("request.txt")).unwrap());
        let secs = unix_secs(ctx["timestamp"].as_str().unwrap());
        let date_time = amz_date(secs);
        let mut headers = case.headers.clone();
        headers.push(("X-Amz-Date".into(), date_time.clone()));
        let token = ctx["credentials"]["token"].as_str();
        if let Some(t) = token.filter(|_| !ctx["omit_session_token"].as_bool().unwrap_or(false)) {
            headers.push(("X-Amz-Security-Token".into(), t.to_owned()));
        }
        let payload_hash = sha256_hex(&case.body);
        if ctx["sign_body"].as_bool().unwrap_or(false) {
            headers.push(("X-Amz-Content-Sha256".into(), payload_hash.clone()));
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let input = CanonicalInput {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: &refs,
            payload_hash: &payload_hash,
            normalize_path: ctx["normalize"].as_bool().unwrap_or(true),
        };
        let (canonical, _) = canonical_request(&input);
        assert_eq!(
            canonical,
            read(dir, "header-canonical-request.txt"),
            "{name}: canonical request"
        );
        let scope = Scope {
            date: &date_time[..8],
            region: ctx["region"].as_str().unwrap(),
            service: ctx["service"].as_str().unwrap(),
        };
        let sts = string_to_sign(&date_time, &scope, &canonical);
        assert_eq!(
            sts,
            read(dir, "header-string-to-sign.txt"),
            "{name}: string to sign"
        );
        let sig = signature(
            ctx["credentials"]["secret_access_key"].as_str().unwrap(),
            &scope,
            &sts,
        );
        assert_eq!(sig, read(dir, "header-signature.txt"), "{name}: signature");
        checked += 1;
    }
    assert!(checked >= 30, "expected the whole suite, checked {checked}");
}
