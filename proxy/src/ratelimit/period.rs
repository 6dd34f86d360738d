//! UTC calendar months — the unit of usage metering and billing.
//!
//! A month is named `YYYY-MM` and runs from its first millisecond (00:00:00.000 UTC on the 1st)
//! to the last (23:59:59.999 on its last day). The conversion is the proleptic Gregorian
//! civil-from-days algorithm, the same one the Lua limiter script runs over Redis' clock, so
//! Rust and Redis always agree on which month a millisecond belongs to.

use std::fmt;

/// One UTC month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// The year.
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Period {
    /// The month containing `ms` (milliseconds since the Unix epoch, UTC).
    pub fn of_millis(ms: i64) -> Period {
        let z = ms.div_euclid(MS_PER_DAY) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Period {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u32::try_from(month).unwrap_or(1),
        }
    }

    /// The current month by this machine's clock.
    pub fn now() -> Period {
        Period::of_millis(now_millis())
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Period> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let year: i32 = y.parse().ok()?;
        let month: u32 = m.parse().ok()?;
        ((1..=12).contains(&month) && year >= 1970).then_some(Period { year, month })
    }

    /// The month before.
    pub fn prev(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                month: self.month - 1,
                ..self
            }
        }
    }

    /// The month after.
    pub fn next(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                month: self.month + 1,
                ..self
            }
        }
    }

    /// Its first millisecond.
    pub fn start_millis(self) -> i64 {
        days_from_civil(self.year, self.month, 1) * MS_PER_DAY
    }

    /// The first millisecond after it.
    pub fn end_millis(self) -> i64 {
        self.next().start_millis()
    }

    /// When its usage may be deleted: `retention_days` after it ends (Unix seconds).
    pub fn expire_at_secs(self, retention_days: u32) -> i64 {
        self.end_millis() / 1000 + i64::from(retention_days) * 86_400
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn month_edges_are_exact() {
        let nov = Period::parse("2026-11").expect("valid");
        assert_eq!(nov.start_millis(), 1_793_491_200_000); // 2026-11-01T00:00:00Z
        assert_eq!(
            Period::of_millis(nov.end_millis() - 1),
            nov,
            "23:59:59.999 on the 30th"
        );
        assert_eq!(Period::of_millis(nov.end_millis()).to_string(), "2026-12");
        assert_eq!(
            Period::parse("2024-02").map(|p| (p.end_millis() - p.start_millis()) / MS_PER_DAY),
            Some(29)
        );
        assert_eq!(
            Period::parse("2026-12")
                .map(|p| p.next().to_string())
                .as_deref(),
            Some("2027-01")
        );
        assert_eq!(
            Period::parse("2027-01")
                .map(|p| p.prev().to_string())
                .as_deref(),
            Some("2026-12")
        );
        for bad in [
            "2026-13", "2026-00", "26-11", "2026-1", "abcd-ef", "1969-12",
        ] {
            assert!(Period::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_millisecond_falls_inside_its_month(ms in 0i64..4_102_444_800_000) {
            let p = Period::of_millis(ms);
            prop_assert!(p.start_millis() <= ms && ms < p.end_millis());
            prop_assert_eq!(Period::parse(&p.to_string()), Some(p));
        }
    }
}
