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

    /// `yyyyMMddHHmmss`.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
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
    }
}
