//! UTC calendar fields from Unix time, for the timestamp formats the protocol
//! uses (`log_id`'s `yyyyMMddHHmmss`, SigV4's `yyyyMMdd'T'HHmmss'Z'`). Pure.

/// A UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u64,
    /// Minute, 0-59.
    pub minute: u64,
    /// Second, 0-59.
    pub second: u64,
}

impl Utc {
    /// The UTC fields of `unix_secs` (Howard Hinnant's civil-from-days).
    pub fn from_unix(unix_secs: u64) -> Self {
        let (days, rem) = (unix_secs / 86_400, unix_secs % 86_400);
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
        }
    }

    /// RFC 3339 in UTC: `YYYY-MM-DDThh:mm:ssZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `yyyyMMddHHmmss`.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days from 1970-01-01 to `year`-`month`-`day` (the inverse of
/// [`Utc::from_unix`]'s date part; Hinnant's days-from-civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_convert() {
        assert_eq!(Utc::from_unix(0).compact(), "19700101000000");
        assert_eq!(Utc::from_unix(1_440_938_160).compact(), "20150830123600");
        assert_eq!(Utc::from_unix(1_786_261_382).compact(), "20260809074302");
        assert_eq!(
            Utc::from_unix(951_782_400).compact(),
            "20000229000000",
            "leap day"
        );
        assert_eq!(
            Utc::from_unix(1_798_761_599).rfc3339(),
            "2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn days_from_civil_inverts_from_unix() {
        for secs in [0u64, 951_782_400, 1_440_938_160, 1_798_761_599] {
            let u = Utc::from_unix(secs);
            assert_eq!(
                days_from_civil(u.year, u.month, u.day),
                (secs / 86_400) as i64
            );
        }
    }
}
