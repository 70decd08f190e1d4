//! Sizes (`"32MiB"`) and durations (`"250ms"`) as written in router.toml.

use std::time::Duration;

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

/// Parses durations like `"250ms"`, `"2s"`, `"1m 30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?}: {e} (write e.g. \"250ms\" or \"2s\")"))
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
    }
}
