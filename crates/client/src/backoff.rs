//! Backoff as pure functions of the attempt number: one capped exponential
//! ([`capped_exponential`]) serves the socket's reconnects and the gateway's
//! delivery retries, each with its jitter.

use std::time::Duration;

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Largest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// `first` doubling with each attempt (1-based: attempt 1 waits `first`),
/// capped at `cap`.
pub fn capped_exponential(attempt: u32, first: Duration, cap: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << exp).min(cap)
}

/// The delay before reconnect attempt `attempt` (1-based): 500 ms doubling up to
/// 60 s, then scaled by `jitter` in `[0.5, 1.0]` so many sessions do not
/// reconnect in step. `jitter` outside that range is clamped.
pub fn reconnect_delay(attempt: u32, jitter: f64) -> Duration {
    capped_exponential(attempt, BACKOFF_MIN, BACKOFF_MAX).mul_f64(jitter.clamp(0.5, 1.0))
}

/// "Full jitter" (AWS architecture blog, "Exponential backoff and jitter"):
/// a delay drawn evenly from zero to the capped exponential, `random` being
/// that draw in `[0, 1]` (clamped), so retries of many messages after one
/// outage spread out instead of arriving together.
pub fn full_jitter(attempt: u32, first: Duration, cap: Duration, random: f64) -> Duration {
    capped_exponential(attempt, first, cap).mul_f64(random.clamp(0.0, 1.0))
}

/// The web SDK's wait between request retransmissions:
/// `500 + 100 * attempt + random(0..100)` ms, capped at 2000 ms (PROTOCOL.md 1.11).
pub fn retransmit_delay(attempt: u32, random_0_100: u64) -> Duration {
    Duration::from_millis((500 + 100 * u64::from(attempt) + random_0_100.min(100)).min(2000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_and_cap() {
        let table = [
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (8, 60_000),
            (40, 60_000),
        ];
        for (attempt, ms) in table {
            assert_eq!(
                reconnect_delay(attempt, 1.0),
                Duration::from_millis(ms),
                "attempt {attempt}"
            );
        }
        assert_eq!(reconnect_delay(2, 0.5), Duration::from_millis(500));
        assert_eq!(
            reconnect_delay(2, 7.0),
            Duration::from_millis(1000),
            "jitter is clamped"
        );
        assert_eq!(reconnect_delay(0, 1.0), BACKOFF_MIN);
    }

    #[test]
    fn full_jitter_stays_under_the_capped_exponential() {
        let (first, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(full_jitter(3, first, cap, 1.0), Duration::from_secs(4));
        assert_eq!(full_jitter(3, first, cap, 0.5), Duration::from_secs(2));
        assert_eq!(full_jitter(40, first, cap, 1.0), cap);
        assert_eq!(full_jitter(2, first, cap, -3.0), Duration::ZERO);
    }

    #[test]
    fn retransmit_delays_follow_the_web_sdk() {
        assert_eq!(retransmit_delay(1, 0), Duration::from_millis(600));
        assert_eq!(retransmit_delay(3, 100), Duration::from_millis(900));
        assert_eq!(retransmit_delay(30, 100), Duration::from_millis(2000));
    }
}
