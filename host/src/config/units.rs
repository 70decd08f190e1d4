//! Sizes (`"32MiB"`) and durations (`"250ms"`) as written in router.toml.
//!
//! Durations are `humantime`'s, with a ceiling. Sizes are parsed here, not
//! by `bytesize`: measured against bytesize 2.7.0 (`ByteSize::from_str`)
//! on the inputs below, the crate would change what router.toml accepts and
//! every message about it. It accepts what is refused today (`"1.5MiB"`,
//! `"32mib"`, `"4k"` as 4000, `"1TiB"`), refuses what is accepted today
//! (`"1_024"`, which TOML users write as they write integers), saturates
//! `"99999999999GiB"` to 18446744073709551615 instead of refusing it as
//! too large, and words its errors its own way (`couldn't parse "parsecs"
//! into a known SI unit, ...` where the config says which units there are).
//! Fixing each of those around the crate would be more code than the
//! thirty lines of [`parse_size`].

use std::time::{Duration, Instant};

use serde::Deserialize;

/// A size as written in the file: a number of bytes or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

/// Parses `1024`, `"1024"`, `"512KiB"`, `"32MiB"`, `"1GiB"`, `"10MB"`, `"4 KiB"`.
pub fn parse_size(raw: &RawSize) -> Result<u64, String> {
    let text = match raw {
        RawSize::Bytes(n) if *n >= 0 => return Ok(*n as u64),
        RawSize::Bytes(n) => return Err(format!("size must not be negative, got {n}")),
        RawSize::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    let number: u64 = digits.parse().map_err(|_| {
        format!("invalid size {text:?}: expected a number of bytes or a number with a unit, like \"32MiB\"")
    })?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// The longest duration any key accepts: 7 days. Every timeout, backoff,
/// grace and wait in the config (and `--timeout`) is parsed here, so none
/// can be large enough to overflow `Instant + Duration` (issue 18, item 2:
/// `max_retry_after = "18446744073709551615s"` made the webhook task panic).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses durations like `"250ms"`, `"2s"`, `"1m 30s"`, at most
/// [`MAX_DURATION`]. Callers prefix the key in their error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?}: {e} (write e.g. \"250ms\" or \"2s\")"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is too long: at most {} (7 days)",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// `at + d`, saturating: at most ~100 years after `at` instead of the panic
/// `Instant + Duration` gives on overflow. For every deadline computed from
/// a duration that comes from the config, the network (`Retry-After`) or a
/// guest (issue 18, item 2).
pub fn instant_after(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(d).or_else(|| at.checked_add(FAR)).unwrap_or(at)
}

/// [`instant_after`] for tokio's clock.
pub fn tokio_instant_after(at: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(instant_after(at.into_std(), d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(s: &str) -> Result<u64, String> {
        parse_size(&RawSize::Text(s.to_string()))
    }

    #[test]
    fn sizes() {
        assert_eq!(size("32MiB"), Ok(32 << 20));
        assert_eq!(size("4 KiB"), Ok(4096));
        assert_eq!(size("10MB"), Ok(10_000_000));
        assert_eq!(size("1_024"), Ok(1024));
        assert_eq!(parse_size(&RawSize::Bytes(7)), Ok(7));
        assert!(size("12 parsecs")
            .unwrap_err()
            .contains("unknown unit \"parsecs\""));
        assert!(size("MiB").unwrap_err().contains("invalid size"));
        assert!(parse_size(&RawSize::Bytes(-1)).is_err());
        assert!(size("99999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("invalid duration \"fast\""));
        assert_eq!(parse_duration("7days"), Ok(MAX_DURATION));
        for huge in ["18446744073709551615s", "8days", "1y"] {
            let err = parse_duration(huge).unwrap_err();
            assert!(err.contains("is too long: at most 7days"), "{huge}: {err}");
        }
    }

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        let now = Instant::now();
        let far = instant_after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            instant_after(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        let t = tokio::time::Instant::now();
        assert!(tokio_instant_after(t, Duration::MAX) > t);
    }
}
