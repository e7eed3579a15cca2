//! The `gateway_input` fuzz target's inputs, replayed on stable Rust through
//! the same entry (`api::fuzzing::run_case`): its minimised corpus
//! (fuzz/corpus/gateway_input) must not panic and must be refused only as the
//! caller's fault, and its named seeds (fuzz/seeds/gateway_input) must be
//! answered as their names say: `ok-*` accepted, `err-<code>-*` refused with
//! that code.

use std::path::{Path, PathBuf};

use tiktok_dm_gateway::api::ApiError;
use tiktok_dm_gateway::api::fuzzing::run_case;

fn cases(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Runs a case on its own task, so that a panic names the file.
async fn run(name: &str, case: Vec<u8>) -> Result<(), ApiError> {
    tokio::spawn(async move { run_case(&case).await })
        .await
        .unwrap_or_else(|e| panic!("{name} panicked: {e}"))
}

#[tokio::test]
async fn every_input_of_the_fuzz_corpus_is_read_without_panicking_and_refused_only_as_a_4xx() {
    let corpus = cases("corpus/gateway_input");
    assert!(corpus.len() >= 50, "{} inputs", corpus.len());
    let mut accepted = 0;
    for (name, case) in corpus {
        match run(&name, case).await {
            Ok(()) => accepted += 1,
            Err(e) => assert!(
                e.status().is_client_error(),
                "{name}: {} {}",
                e.code.as_str(),
                e.message
            ),
        }
    }
    // Minimising keeps one input per path taken, so only a few reach
    // acceptance; the named seeds check each kind of accepted send.
    assert!(accepted > 0, "no input of the corpus accepted");
}

#[tokio::test]
async fn every_seed_of_the_fuzz_corpus_is_answered_as_its_name_says() {
    let seeds = cases("seeds/gateway_input");
    assert!(seeds.len() >= 50, "{} seeds", seeds.len());
    for (name, case) in seeds {
        let outcome = run(&name, case).await;
        if name.starts_with("ok-") {
            if let Err(e) = outcome {
                panic!("{name} refused: {} {}", e.code.as_str(), e.message);
            }
        } else {
            let expected = name
                .strip_prefix("err-")
                .and_then(|rest| rest.split('-').next())
                .unwrap_or_else(|| panic!("{name}: not ok-* or err-<code>-*"));
            match outcome {
                Ok(()) => panic!("{name} accepted"),
                Err(e) => assert_eq!(e.code.as_str(), expected, "{name}: {}", e.message),
            }
        }
    }
}
