//! CPU time of the processes a run involves, from `/proc`.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat`'s times. Assumed, not asked
/// (`sysconf(_SC_CLK_TCK)` needs libc, which this crate does not use): 100 on
/// every Linux the harness has run on (`getconf CLK_TCK`).
const CLK_TCK: u64 = 100;

/// CPU time so far of each of `pids`, summed.
pub fn processes(pids: &[u32]) -> Duration {
    pids.iter()
        .map(|&p| tiktok_dm_test_support::cpu_time(p))
        .sum()
}

/// A `postgres` process as `/proc/PID/stat` shows it.
struct Postgres {
    pid: u32,
    /// Its own user and system time, in clock ticks.
    own: u64,
    /// Its reaped children's user and system time, in clock ticks.
    children: u64,
    /// When it started, in clock ticks after boot.
    started: u64,
}

/// CPU time so far of the PostgreSQL server on this machine: every live
/// process named `postgres` (the postmaster, its helpers, the backends), and
/// the backends that have ended (reaped by the postmaster, the oldest
/// `postgres` process, into its children's times). `None` when `/proc` shows
/// no such process (not readable, or the server runs elsewhere). Best effort:
/// other clients' backends (tests run meanwhile) count too.
pub fn postgres() -> Option<Duration> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(p) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse(pid, &s))
        {
            all.push(p);
        }
    }
    let postmaster = all.iter().min_by_key(|p| (p.started, p.pid))?;
    let ticks = all.iter().map(|p| p.own).sum::<u64>() + postmaster.children;
    Some(Duration::from_micros(ticks * 1_000_000 / CLK_TCK))
}

/// A `/proc/PID/stat` line, if its command is `postgres`.
fn parse(pid: u32, stat: &str) -> Option<Postgres> {
    let (head, rest) = stat.rsplit_once(')')?;
    if head.split_once('(')?.1 != "postgres" {
        return None;
    }
    // Fields after the command: index i here is field i + 3 of the line
    // (utime 14, stime 15, cutime 16, cstime 17, starttime 22).
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some(Postgres {
        pid,
        own: f.get(11)? + f.get(12)?,
        children: f.get(13)? + f.get(14)?,
        started: *f.get(19)?,
    })
}
