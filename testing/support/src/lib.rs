//! Test helpers shared by the workspace's integration tests: start the sandbox on
//! `127.0.0.1:0`, and opt-in test tracing (set `TEST_LOG=1`).
//!
//! This is test code: a failure to bind a loopback port is a broken machine, so
//! it panics with a message rather than returning errors.
#![allow(clippy::expect_used)]

pub mod postgres;
mod proxy;

use std::net::SocketAddr;

pub use proxy::{Proxy, spawn_proxy};

use tiktok_dm_sandbox::{Sandbox, SandboxHandle, Seed};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A sandbox running in the test's runtime. Dropping it stops the server.
pub struct TestSandbox {
    /// Fault helpers and inspection.
    pub handle: SandboxHandle,
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestSandbox {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The frontier WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/v2", self.addr)
    }

    /// Stops the server and waits until it has stopped accepting.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a sandbox with the default seed on an ephemeral loopback port.
pub async fn spawn_sandbox() -> TestSandbox {
    spawn_sandbox_with(Seed::default_seed().expect("default seed is valid")).await
}

/// Starts a sandbox with `seed` on an ephemeral loopback port.
pub async fn spawn_sandbox_with(seed: Seed) -> TestSandbox {
    spawn(Sandbox::new(seed).expect("valid seed")).await
}

/// Runs an already built sandbox on an ephemeral loopback port.
pub async fn spawn(sandbox: Sandbox) -> TestSandbox {
    init_test_tracing();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let handle = sandbox.handle();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = sandbox
            .run(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    TestSandbox {
        handle,
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// Installs a tracing subscriber writing to the test's output when `TEST_LOG` is
/// set; otherwise tests print nothing.
pub fn init_test_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("debug")
            .try_init();
    }
}

/// A real PNG of `w`x`h` noise pixels. Noise does not compress, so the file is
/// about `w * h * 3` bytes: handy for uploads over the part threshold.
pub fn noise_png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().expect("PNG header");
    writer.write_image_data(&pixels).expect("PNG data");
    writer.finish().expect("PNG end");
    out
}

/// Resident memory of process `pid` in KiB, from `/proc` (0 where there is none):
/// what the load harnesses report as a process's memory.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) process `pid` has used so far, from `/proc` (zero
/// where there is none). The load harnesses divide a run's difference by its
/// sends: a process's cost per send, which unlike sends per second does not
/// depend on what else shares the cores.
pub fn cpu_time(pid: u32) -> std::time::Duration {
    stat_cpu_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU time of the threads of process `pid` named `name` (a thread's name is
/// what `std::thread::Builder::name` gave it, cut to 15 bytes).
pub fn thread_cpu_time(pid: u32, name: &str) -> std::time::Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return std::time::Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|t| stat_cpu_time(&std::fs::read_to_string(t.path().join("stat")).unwrap_or_default()))
        .sum()
}

fn stat_cpu_time(stat: &str) -> std::time::Duration {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: indices 11 and 12 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // Linux reports them in USER_HZ, 100 per second on every architecture it supports.
    std::time::Duration::from_millis(ticks * 10)
}
