//! Durations written the way Go's `time.ParseDuration` reads them (`90s`, `10m`, `1h30m`,
//! `2.5h`, `300ms`), for aiops-platform's `agent.timeout`.

/// Nanoseconds per unit suffix.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The duration in nanoseconds, or `None` when `text` is not a Go duration or is negative.
/// A bare `0` is zero; any other number needs a unit.
pub(crate) fn parse_go_duration(text: &str) -> Option<u128> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() || text.starts_with('-') {
        return None;
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let &(_, scale) = UNITS.iter().find(|(name, _)| *name == unit)?;
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        // Digits past nanosecond precision add nothing; they are dropped, not rounded.
        let mut place = scale;
        for digit in fraction.bytes() {
            place /= 10;
            part = part.checked_add(u128::from(digit - b'0') * place)?;
        }
        total = total.checked_add(part)?;
        rest = next;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    const MS: u128 = 1_000_000;

    #[test]
    fn go_durations_parse_to_nanoseconds() {
        assert_eq!(parse_go_duration("2h"), Some(7_200_000 * MS));
        assert_eq!(parse_go_duration("10m"), Some(600_000 * MS));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000 * MS));
        assert_eq!(parse_go_duration("2.5h"), Some(9_000_000 * MS));
        assert_eq!(parse_go_duration("1m30.5s"), Some(90_500 * MS));
        assert_eq!(parse_go_duration(".5s"), Some(500 * MS));
        assert_eq!(parse_go_duration("300ms"), Some(300 * MS));
        assert_eq!(parse_go_duration("1500us"), Some(1_500_000));
        assert_eq!(parse_go_duration("7ns"), Some(7));
        assert_eq!(parse_go_duration("+45s"), Some(45_000 * MS));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("0s"), Some(0));
    }

    #[test]
    fn other_text_is_refused() {
        for bad in [
            "", "10", "-5m", "5 m", "5x", "m", "1..5s", "5mm", ".s", "1h-30m", "1e3s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
        let huge = format!("{}h", "9".repeat(40));
        assert_eq!(parse_go_duration(&huge), None, "overflow is refused");
    }
}
