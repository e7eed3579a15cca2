//! Quota windows and usage counters, as both backends keep them: per key, one
//! row per UTC day, one per UTC month, one for all time.

use crate::types::{QuotaWindow, State, UsageTotals};

/// A day in milliseconds.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The counter period a quota window reads.
pub(crate) fn period_of(window: &QuotaWindow) -> &'static str {
    if window.name == "monthly" {
        "month"
    } else {
        "day"
    }
}

/// Unix ms of the first instant of the UTC month containing `now_ms`
/// (days-from-civil and its inverse, Howard Hinnant's algorithms).
pub(crate) fn month_start(now_ms: i64) -> i64 {
    let days = now_ms.div_euclid(DAY_MS);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5 + 1;
    (days - (day_of_month - 1)) * DAY_MS
}

/// Adds a `usage_counters` row (its period, messages, image bytes) to `totals`.
pub(crate) fn add_counter(totals: &mut UsageTotals, period: &str, messages: i64, image_bytes: i64) {
    let n = u64::try_from(messages).unwrap_or(0);
    match period {
        "day" => totals.today = n,
        "month" => totals.month = n,
        _ => {
            totals.total = n;
            totals.image_bytes = u64::try_from(image_bytes).unwrap_or(0);
        }
    }
}
/// The error recorded on the messages a request will not attempt because an
/// earlier one of it did not end sent.
pub(crate) fn not_attempted_error() -> String {
    crate::columns::delivery_error_column(&crate::types::DeliveryError::NotAttempted)
}

/// What a message ending in `state` gives back to its key's counters (messages,
/// image bytes): a failed one its reservation; an `unknown` one keeps it (it
/// may have been delivered), as does a sent one.
pub(crate) fn quota_returned(state: State, image_bytes: i64) -> (i64, i64) {
    if state == State::Failed {
        (1, image_bytes)
    } else {
        (0, 0)
    }
}

/// A stored count; a negative one (never written) reads as zero.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_start_is_the_first_of_the_utc_month() {
        let day = DAY_MS;
        assert_eq!(month_start(0), 0);
        assert_eq!(month_start(30 * day + 5), 0, "1970-01-31");
        assert_eq!(month_start(31 * day), 31 * day, "1970-02-01");
        // 2026-12-31T23:59:59Z and 2027-01-01T00:00:00Z.
        assert_eq!(month_start(1_798_761_599_000), 1_796_083_200_000);
        assert_eq!(month_start(1_798_761_600_000), 1_798_761_600_000);
        // 2028-02-29 (leap day) is in February 2028.
        assert_eq!(month_start(1_835_395_200_000), 1_832_976_000_000);
    }
}
