//! The built `tiktok-dm` binary, run against a sandbox on an ephemeral port.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod config;
mod decode;
mod images;
mod inbound_restart;
mod listen;
mod listen_switch;
mod master_key;
mod postgres;
mod restart;
mod run_sandbox;
mod scale_out;
mod scale_out_pacing;
mod scale_out_wanted;
mod secrets;
mod send;
mod serve;
mod settings;
mod webhooks;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_tiktok-dm");

/// Runs the binary with `args` (and `stdin`), off the async runtime so the
/// in-process sandbox keeps serving.
pub async fn run(args: Vec<String>, stdin: Option<String>) -> Output {
    run_with_env(args, stdin, &[]).await
}

/// The binary without any `TIKTOK_DM_*` variable of the test's own environment.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TIKTOK_DM_") {
            command.env_remove(name);
        }
    }
    command
}

/// [`run`] with extra environment variables.
pub async fn run_with_env(
    args: Vec<String>,
    stdin: Option<String>,
    env: &[(&str, &str)],
) -> Output {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut child = command()
            .args(&args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Starts a long-running `tiktok-dm` (sandbox, serve) and returns it with the
/// JSON line it prints when ready. Kill the child when done.
pub async fn spawn_ready(args: &[&str]) -> (std::process::Child, serde_json::Value) {
    spawn_ready_with_env(args, &[]).await
}

/// [`spawn_ready`] with extra environment variables.
pub async fn spawn_ready_with_env(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, serde_json::Value) {
    use std::io::{BufRead as _, BufReader};
    let mut child = command()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let ready = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("not a JSON ready line ({e}): {line:?}"));
    (child, ready)
}

/// POSTs `text` to the first sandbox conversation through the `serve --sandbox`
/// whose ready line is `ready`, with the API key `key`: the status and the
/// JSON answer.
pub async fn send_text(
    ready: &serde_json::Value,
    key: &str,
    text: &str,
) -> (u16, serde_json::Value) {
    let conversation = &ready["conversations"][0];
    let body = serde_json::json!({
        "conversation_id": conversation["conversation_id"],
        "conversation_short_id": conversation["conversation_short_id"],
        "text": text,
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", ready["url"].as_str().unwrap()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

pub fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

/// `send` to alice and bob's conversation as alice, plus `extra` arguments.
pub fn send_args_with(
    sandbox: &tiktok_dm_test_support::TestSandbox,
    extra: &[&str],
) -> Vec<String> {
    let c = &sandbox.handle.seed().conversations[0];
    let mut v = args(&[
        "send",
        "--sandbox",
        &sandbox.base_url(),
        "--session",
        "sandbox-session-alice",
        "--conversation-id",
        c.conversation_id.as_str(),
        "--conversation-short-id",
        &c.conversation_short_id.to_string(),
    ]);
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `accounts add --name NAME --session - [EXTRA] --database DB`, the
/// session given on standard input.
pub async fn add_account(db: &str, name: &str, session: &str, extra: &[&str]) -> Output {
    let mut list = vec!["accounts", "add", "--name", name, "--session", "-"];
    list.extend_from_slice(extra);
    list.extend_from_slice(&["--database", db]);
    run(args(&list), Some(session.to_owned())).await
}
