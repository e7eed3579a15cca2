//! Driving sends: closed loop (a fixed number in flight) and open loop (a
//! fixed arrival rate), and the latency figures of a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Microseconds in `d`.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub struct Stats {
    pub rate: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
}

/// The `p` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A run's figures, printed as a row of the latency table.
pub fn stats(name: &str, mut samples: Vec<Duration>, wall: Duration) -> Stats {
    samples.sort();
    let pct = |p: f64| percentile(&samples, p);
    let s = Stats {
        rate: samples.len() as f64 / wall.as_secs_f64(),
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
    };
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        samples.len(),
        s.rate,
        us(s.p50),
        us(s.p90),
        us(s.p99)
    );
    s
}

/// `total` sends over `concurrency` tasks, each timing its own sends.
pub async fn drive<F, Fut>(total: usize, concurrency: usize, send: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let per_task = total / concurrency;
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let send = Arc::clone(&send);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                send().await;
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    (samples, wall.elapsed())
}

/// Sends arriving at `rate` per second for `seconds`, each timed from its
/// arrival. Arrivals come from a thread of their own (tokio's timer ticks in
/// whole milliseconds), with exponential gaps, and do not wait for earlier
/// answers; a late answer is counted from when its send was due.
pub async fn paced<F, Fut>(rate: f64, seconds: f64, send: F) -> Vec<Duration>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let arrivals = std::thread::spawn(move || {
        let start = Instant::now();
        let mut due = Duration::ZERO;
        let mut tasks = Vec::new();
        while due.as_secs_f64() < seconds {
            let at = start + due;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let sent = send();
            tasks.push(runtime.spawn(async move {
                sent.await;
                at.elapsed()
            }));
            let gap = -(1.0 - rand::random::<f64>()).ln() / rate;
            due += Duration::from_secs_f64(gap);
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || arrivals.join().unwrap())
        .await
        .unwrap();
    let mut samples = Vec::with_capacity(tasks.len());
    for t in tasks {
        samples.push(t.await.unwrap());
    }
    samples
}
