//! Per-plugin rate limit on log lines: a plugin that logs in a tight loop
//! must not flood the daemon's log (or its disk). A token bucket per plugin,
//! shared by every worker; lines over the limit are dropped and counted, and
//! a summary line says so at most once a second.

use std::time::{Duration, Instant};

/// How often a plugin's suppressed lines are summarised in the log.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// `[plugins] log_rate` and `log_burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLimit {
    /// Lines per second a plugin may log on average; 0 means no limit.
    pub rate: u32,
    /// Lines a plugin may log at once after a quiet spell.
    pub burst: u32,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            rate: 100,
            burst: 500,
        }
    }
}

#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    /// When tokens were last added; `None` before first use (a full bucket).
    last: Option<Instant>,
    /// Lines dropped since the last summary.
    suppressed: u64,
    last_report: Option<Instant>,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket::new()
    }
}

impl TokenBucket {
    pub fn new() -> TokenBucket {
        TokenBucket {
            tokens: 0.0,
            last: None,
            suppressed: 0,
            last_report: None,
        }
    }

    /// Takes up to `n` tokens; returns how many lines may be logged.
    pub fn take(&mut self, n: u64, limit: LogLimit, now: Instant) -> u64 {
        if limit.rate == 0 {
            return n;
        }
        let burst = f64::from(limit.burst.max(1));
        self.tokens = match self.last {
            None => burst,
            Some(last) => {
                let refill = now.saturating_duration_since(last).as_secs_f64() * f64::from(limit.rate);
                (self.tokens + refill).min(burst)
            }
        };
        self.last = Some(now);
        let granted = (self.tokens.floor() as u64).min(n);
        self.tokens -= granted as f64;
        granted
    }

    /// Notes `n` dropped lines; returns how many to report if a summary is
    /// due (at most one per [`REPORT_EVERY`]), resetting the tally.
    pub fn suppressed(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.suppressed += n;
        if self.suppressed == 0 {
            return None;
        }
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY);
        if !due {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: LogLimit = LogLimit { rate: 10, burst: 20 };

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new();
        let t0 = Instant::now();
        assert_eq!(b.take(50, LIMIT, t0), 20, "a full bucket allows the burst");
        assert_eq!(b.take(5, LIMIT, t0), 0, "then nothing until refilled");
        assert_eq!(
            b.take(50, LIMIT, t0 + Duration::from_millis(500)),
            5,
            "10/s for half a second"
        );
        assert_eq!(
            b.take(50, LIMIT, t0 + Duration::from_secs(100)),
            20,
            "refill stops at the burst"
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new();
        let off = LogLimit { rate: 0, burst: 0 };
        assert_eq!(b.take(1_000_000, off, Instant::now()), 1_000_000);
    }

    #[test]
    fn summaries_at_most_once_a_second() {
        let mut b = TokenBucket::new();
        let t0 = Instant::now();
        assert_eq!(b.suppressed(0, t0), None);
        assert_eq!(b.suppressed(3, t0), Some(3));
        assert_eq!(b.suppressed(4, t0 + Duration::from_millis(10)), None);
        assert_eq!(b.suppressed(1, t0 + Duration::from_millis(20)), None);
        assert_eq!(b.suppressed(2, t0 + Duration::from_millis(1100)), Some(7));
    }
}
