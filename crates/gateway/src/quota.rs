//! Quota windows: UTC day and UTC month, from a key's limits.

use tiktok_dm_proto::time::{Utc, days_from_civil};
use tiktok_dm_store::{ApiKey, QuotaWindow};

const DAY_MS: i64 = 86_400_000;

/// Unix ms of the first instant of the UTC month after `year`-`month`.
fn next_month_start(year: i64, month: u32) -> i64 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(y, m, 1) * DAY_MS
}

/// The starts (ms) of the UTC day and the UTC month containing `now_ms`.
pub fn window_starts(now_ms: i64) -> (i64, i64) {
    let utc = Utc::from_unix(u64::try_from(now_ms / 1000).unwrap_or(0));
    (
        now_ms - now_ms.rem_euclid(DAY_MS),
        days_from_civil(utc.year, utc.month, 1) * DAY_MS,
    )
}

/// The windows a key's limits define at `now_ms`.
pub fn windows(key: &ApiKey, now_ms: i64) -> Vec<QuotaWindow> {
    let (day_start, month_start) = window_starts(now_ms);
    let utc = Utc::from_unix(u64::try_from(now_ms / 1000).unwrap_or(0));
    let mut out = Vec::new();
    if let Some(limit) = key.daily_limit {
        out.push(QuotaWindow {
            name: "daily",
            limit: u64::from(limit),
            start: day_start,
            resets_at: day_start + DAY_MS,
        });
    }
    if let Some(limit) = key.monthly_limit {
        out.push(QuotaWindow {
            name: "monthly",
            limit: u64::from(limit),
            start: month_start,
            resets_at: next_month_start(utc.year, utc.month),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(daily: Option<u32>, monthly: Option<u32>) -> ApiKey {
        ApiKey {
            id: 1,
            name: "k".into(),
            prefix: "p".into(),
            daily_limit: daily,
            monthly_limit: monthly,
            account: None,
            accounts: Vec::new(),
            any_account: false,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn windows_are_the_utc_day_and_month() {
        // 2026-12-31T23:59:59Z
        let now = 1_798_761_599_000;
        let w = windows(&key(Some(5), Some(100)), now);
        assert_eq!(w[0].start, 1_798_675_200_000, "2026-12-31T00:00Z");
        assert_eq!(w[0].resets_at, 1_798_761_600_000);
        assert_eq!(w[1].start, 1_796_083_200_000, "2026-12-01T00:00Z");
        assert_eq!(w[1].resets_at, 1_798_761_600_000, "2027-01-01T00:00Z");
        assert!(windows(&key(None, None), now).is_empty());
    }
}
