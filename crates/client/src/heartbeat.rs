//! The web SDK's heartbeat rule (PROTOCOL.md 1.9), as a pure function.

use std::time::Duration;

/// What the heartbeat ticker should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Traffic is recent: nothing to do.
    Quiet,
    /// Send the text frame `"hi"`.
    SendHi,
    /// Nothing was received for too long: close and reconnect.
    Reconnect,
}

/// `idle = since_last_receive + interval / 1.5`; reconnect past `max_idle`,
/// say `"hi"` past `interval`.
pub fn beat(since_last_receive: Duration, interval: Duration, max_idle: Duration) -> Beat {
    let idle = since_last_receive + interval.div_f64(1.5);
    if idle > max_idle {
        Beat::Reconnect
    } else if idle > interval {
        Beat::SendHi
    } else {
        Beat::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_defaults_say_hi_after_one_quiet_interval_and_reconnect_after_two() {
        let (i, max) = (Duration::from_secs(15), Duration::from_secs(30));
        assert_eq!(beat(Duration::from_secs(1), i, max), Beat::Quiet);
        assert_eq!(beat(Duration::from_secs(15), i, max), Beat::SendHi);
        // 21 s + 10 s = 31 s, past the 30 s window.
        assert_eq!(beat(Duration::from_secs(21), i, max), Beat::Reconnect);
        assert_eq!(beat(Duration::from_secs(30), i, max), Beat::Reconnect);
    }
}
