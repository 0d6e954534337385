//! Time as a value (SPEC 4.1.7 `due_at_ms`, 13.3 timestamps).
//!
//! The core never reads a clock. Every event arrives with a [`Timestamp`] chosen by the shell
//! (milliseconds since the Unix epoch, taken from one monotonic-anchored clock), and the core only
//! ever compares and adds these values. Serialised as a plain integer so an event log replays bit
//! for bit; [`rfc3339`] renders the same value for people and JSON APIs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

const MS_PER_DAY: u64 = 86_400_000;
/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339's four-digit year can name.
const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

impl Timestamp {
    /// Builds a timestamp from milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating at the far future instead of wrapping.
    #[must_use]
    pub const fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is later.
    pub const fn millis_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Renders as RFC 3339 in UTC: `2026-02-24T20:15:30Z`, with `.mmm` only when the
    /// milliseconds are not zero.
    pub fn to_rfc3339(self) -> String {
        let ms = self.0.min(MAX_RFC3339_MS);
        let days = ms / MS_PER_DAY;
        let in_day = ms % MS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        let (h, m, s, frac) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        if frac == 0 {
            format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
        } else {
            format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:03}Z")
        }
    }

    /// Parses an RFC 3339 date-time (`T`, `t` or a space between date and time; `Z` or a
    /// numeric offset). Fractions beyond milliseconds are truncated. Instants before the epoch
    /// are rejected: no tracker timestamp is that old, so such a value is corrupt.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeParseError> {
        parse(text.as_bytes()).ok_or_else(|| TimeParseError {
            input: text.chars().take(64).collect(),
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A string that is not an RFC 3339 date-time at or after the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeParseError {
    /// The rejected input (first 64 characters).
    pub input: String,
}

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an RFC 3339 timestamp: {:?}", self.input)
    }
}

impl std::error::Error for TimeParseError {}

/// Converts a day count since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Works in 400-year eras of 146,097 days, with years starting on 1 March so that the leap day
/// falls at the end of the year. Only non-negative day counts reach here.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the origin to 0000-03-01, the start of an era.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`]; `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits at `*pos`.
fn digits(bytes: &[u8], pos: &mut usize, n: usize) -> Option<u64> {
    let slice = bytes.get(*pos..*pos + n)?;
    let mut value = 0;
    for &b in slice {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
    }
    *pos += n;
    Some(value)
}

fn expect(bytes: &[u8], pos: &mut usize, allowed: &[u8]) -> Option<()> {
    let b = *bytes.get(*pos)?;
    allowed.contains(&b).then(|| *pos += 1)
}

fn parse(bytes: &[u8]) -> Option<Timestamp> {
    let mut pos = 0;
    let year = digits(bytes, &mut pos, 4)?;
    expect(bytes, &mut pos, b"-")?;
    let month = digits(bytes, &mut pos, 2)?;
    expect(bytes, &mut pos, b"-")?;
    let day = digits(bytes, &mut pos, 2)?;
    expect(bytes, &mut pos, b"Tt ")?;
    let hour = digits(bytes, &mut pos, 2)?;
    expect(bytes, &mut pos, b":")?;
    let minute = digits(bytes, &mut pos, 2)?;
    expect(bytes, &mut pos, b":")?;
    let second = digits(bytes, &mut pos, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // RFC 3339 allows a leap second (60); it lands on the next minute's first second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut millis = 0;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 3 {
                millis = millis * 10 + u64::from(bytes[pos] - b'0');
            }
            pos += 1;
        }
        let count = pos - start;
        if count == 0 {
            return None;
        }
        for _ in count..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match *bytes.get(pos)? {
        b'Z' | b'z' => {
            pos += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            pos += 1;
            let oh = digits(bytes, &mut pos, 2)?;
            expect(bytes, &mut pos, b":")?;
            let om = digits(bytes, &mut pos, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let total = i64::try_from(oh * 60 + om).ok()?;
            if sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    if pos != bytes.len() {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let local_ms = days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    let utc_ms = i64::try_from(local_ms).ok()? - offset_minutes * 60_000;
    u64::try_from(utc_ms).ok().map(Timestamp)
}

/// Serde adapters that write a [`Timestamp`] as an RFC 3339 string (issue fields, API views).
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::Timestamp;

    /// Serialises as an RFC 3339 string.
    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ts.to_rfc3339())
    }

    /// Deserialises from an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&text).map_err(D::Error::custom)
    }

    /// The same for `Option<Timestamp>`, with `null` for `None`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        use super::Timestamp;

        /// Serialises `Some` as an RFC 3339 string and `None` as null.
        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_str(&ts.to_rfc3339()),
                None => s.serialize_none(),
            }
        }

        /// Deserialises an RFC 3339 string or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            text.map(|t| Timestamp::parse_rfc3339(&t).map_err(D::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_771_964_130_000).to_rfc3339(),
            "2026-02-24T20:15:30Z"
        );
        assert_eq!(
            Timestamp(951_782_400_123).to_rfc3339(),
            "2000-02-29T00:00:00.123Z"
        );
    }

    #[test]
    fn parses_offsets_fractions_and_separators() {
        let utc = Timestamp::parse_rfc3339("2026-02-24T20:15:30Z").unwrap();
        assert_eq!(utc, Timestamp(1_771_964_130_000));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-24T21:45:30+01:30").unwrap(),
            utc
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-24 15:15:30-05:00").unwrap(),
            utc
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-24t20:15:30.5z").unwrap(),
            Timestamp(1_771_964_130_500)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-24T20:15:30.123456789Z").unwrap(),
            Timestamp(1_771_964_130_123)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2016-12-31T23:59:60Z").unwrap(),
            Timestamp::parse_rfc3339("2017-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn rejects_malformed_and_pre_epoch_input() {
        for bad in [
            "",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "２０２６-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in 0..=MAX_RFC3339_MS) {
            let ts = Timestamp(ms);
            prop_assert_eq!(Timestamp::parse_rfc3339(&ts.to_rfc3339()), Ok(ts));
        }

        #[test]
        fn days_round_trip(days in 0u64..2_932_896) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), Some(days));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Timestamp::parse_rfc3339(&text);
        }
    }
}
