//! Calendar dates (UTC) from unix days, for listings and partition names; no time-zone data, no
//! date crate: the proleptic Gregorian calendar is all either needs.

/// The civil date `(year, month, day)` of `days` since 1970-01-01 (Howard Hinnant's algorithm).
pub fn date_of_day(days: i64) -> (i64, u32, u32) {
    let z = days.clamp(i64::MIN / 2, i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // In range by construction: month 1..=12, day 1..=31.
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// Days since 1970-01-01 of the civil date `(year, month, day)`; `None` for an impossible date.
pub fn day_of_date(year: i64, month: u32, day: u32) -> Option<i64> {
    let days = i64::from(day);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(-1_000_000..=1_000_000).contains(&year) {
        return None;
    }
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + days - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let out = era * 146_097 + doe - 719_468;
    // 31 February and friends: the round trip tells.
    (date_of_day(out) == (year, month, day)).then_some(out)
}

/// Unix nanoseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(unix_nano: u64) -> String {
    let secs = unix_nano / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = date_of_day(i64::try_from(days).unwrap_or(i64::MAX));
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(date_of_day(0), (1970, 1, 1));
        assert_eq!(date_of_day(-1), (1969, 12, 31));
        assert_eq!(date_of_day(11_016), (2000, 2, 29));
        assert_eq!(date_of_day(20_791), (2026, 12, 4));
        for d in [-800_000, -1, 0, 59, 11_016, 20_791, 106_751] {
            let (y, m, dd) = date_of_day(d);
            assert_eq!(day_of_date(y, m, dd), Some(d));
        }
        assert_eq!(day_of_date(2026, 2, 31), None);
        assert_eq!(day_of_date(2026, 13, 1), None);
        assert_eq!(rfc3339(1_780_000_000 * 1_000_000_000 + 5), "2026-05-28T20:26:40Z");
    }
}
