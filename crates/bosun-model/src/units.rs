//! Durations (`20ms`, `1s`, `1m`, `1m30s`) and percentages (`"60%"`), as the OpenSergo documents
//! write them.

use std::time::Duration;

use serde::Serializer;

const UNITS: [(&str, u128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const DURATION_HINT: &str = r#"a duration like "20ms", "1s" or "1m""#;

/// Parses a duration as Go writes them: one or more of a number (decimals allowed) and a unit
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), as `20ms`, `1.5s`, `1m30s`. Negative durations and
/// numbers without a unit are refused; the error says why.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err(format!("must be {DURATION_HINT}, not empty"));
    }
    if s.starts_with('-') {
        return Err(format!("{s:?} must not be negative"));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(format!("{s:?} is not {DURATION_HINT}"));
        }
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("{s:?} has no unit: write {DURATION_HINT}"));
        }
        let Some(&(_, nanos_per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("{s:?}: unknown unit {unit:?} (expected ns, us, ms, s, m or h)"));
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| format!("{s:?} is too long"))? };
        let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(|| format!("{s:?} is too long"))?;
        let mut scale = nanos_per_unit;
        for digit in fraction.bytes() {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(|| format!("{s:?} is too long"))?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| format!("{s:?} is too long"))?;
    // The remainder is below 10^9, so it fits.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration in the largest unit that keeps it exact: `20ms`, `1s`, `1m`, `90s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (unit, per) = UNITS
        .iter()
        .rev()
        .filter(|(unit, _)| *unit != "µs")
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / per)
}

/// A percentage between 0 and 100, written `"60%"` (decimals allowed: `"12.5%"`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percentage(f64);

impl Percentage {
    /// The percentage, between 0 and 100.
    pub fn percent(self) -> f64 {
        self.0
    }

    /// The ratio, between 0 and 1.
    pub fn ratio(self) -> f64 {
        self.0 / 100.0
    }
}

impl std::fmt::Display for Percentage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl serde::Serialize for Percentage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses `"60%"` into a [`Percentage`]; it must be between `0%` and `100%`.
pub fn parse_percentage(s: &str) -> Result<Percentage, String> {
    let hint = r#"must be a percentage like "60%""#;
    let Some(number) = s.strip_suffix('%') else { return Err(hint.to_owned()) };
    let valid = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
    let Some(value) = valid.then(|| number.parse::<f64>().ok()).flatten() else { return Err(hint.to_owned()) };
    if value > 100.0 {
        return Err(format!("{s:?} must be between 0% and 100%"));
    }
    Ok(Percentage(value))
}

/// Serializes a duration as [`format_duration`] writes it.
pub(crate) fn serialize_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_duration(*d))
}

/// Serializes an optional duration as [`format_duration`] writes it.
pub(crate) fn serialize_opt_duration<S: Serializer>(d: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_duration(d, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration(""), Err(r#"must be a duration like "20ms", "1s" or "1m", not empty"#.to_owned()));
        assert_eq!(
            parse_duration("20"),
            Err(r#""20" has no unit: write a duration like "20ms", "1s" or "1m""#.to_owned())
        );
        assert_eq!(parse_duration("3d"), Err(r#""3d": unknown unit "d" (expected ns, us, ms, s, m or h)"#.to_owned()));
        assert_eq!(parse_duration("-1s"), Err(r#""-1s" must not be negative"#.to_owned()));
        assert_eq!(parse_duration("ms"), Err(r#""ms" is not a duration like "20ms", "1s" or "1m""#.to_owned()));
        assert_eq!(parse_duration("1..2s"), Err(r#""1..2s" is not a duration like "20ms", "1s" or "1m""#.to_owned()));
        assert_eq!(
            parse_duration("1 s"),
            Err(r#""1 s": unknown unit " s" (expected ns, us, ms, s, m or h)"#.to_owned())
        );
        assert!(parse_duration("99999999999999999999999999999999999999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        for (d, s) in [
            (Duration::from_millis(20), "20ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_micros(3), "3us"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s), Ok(d));
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percentage("60%").map(Percentage::percent), Ok(60.0));
        assert_eq!(parse_percentage("12.5%").map(Percentage::ratio), Ok(0.125));
        assert_eq!(parse_percentage("0%").map(Percentage::percent), Ok(0.0));
        assert_eq!(parse_percentage("100%").map(Percentage::percent), Ok(100.0));
        assert_eq!(parse_percentage("60%").map(|p| p.to_string()), Ok("60%".to_owned()));
        let hint = Err(r#"must be a percentage like "60%""#.to_owned());
        for bad in ["60", "0.6", "%", "-5%", "abc%", "1e2%", "", " 60%"] {
            assert_eq!(parse_percentage(bad), hint, "{bad}");
        }
        assert_eq!(parse_percentage("101%"), Err(r#""101%" must be between 0% and 100%"#.to_owned()));
    }
}
