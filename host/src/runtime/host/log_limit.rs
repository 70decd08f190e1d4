//! Per-plugin rate limit on log lines and log bytes: a plugin that logs in
//! a tight loop, or logs few but huge lines, must not flood the daemon's log
//! (or its disk). Two token buckets per plugin (lines and bytes, issue 16),
//! shared by every worker and kept across reloads ([`LogBudgets`], held by
//! the runtime, keyed by plugin name); lines over either limit are dropped
//! and counted, and a summary line says so at most once a second.
//!
//! Hand-written rather than `governor` (issue 11 asked for the crate unless
//! measured otherwise): its `check_n` admits all or nothing per limiter with no way to give tokens
//! back, so two budgets that must both allow a line (lines and bytes)
//! cannot be taken together: a line refused by one budget would still
//! spend the other, which changes what `bytes_are_limited_as_well_as_lines`
//! pins down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LogLimit;

/// How often a plugin's suppressed lines are summarised in the log.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// One plugin's budget, shared by the workers that run it.
pub type LogBudget = Arc<Mutex<TokenBucket>>;

/// Every plugin's budget, by plugin name: a reload that replaces a plugin
/// keeps its budget (and its count of suppressed lines).
#[derive(Default)]
pub struct LogBudgets {
    by_plugin: Mutex<HashMap<Box<str>, LogBudget>>,
}

impl LogBudgets {
    /// The budget of `plugin`, made full on first use.
    pub fn of(&self, plugin: &str) -> LogBudget {
        let mut map = self.by_plugin.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(plugin.into()).or_default().clone()
    }
}

/// One refilling budget: `rate` per second up to `burst`.
#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    /// When tokens were last added; `None` before first use (a full bucket).
    last: Option<Instant>,
}

impl Bucket {
    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        self.tokens = match self.last {
            None => burst,
            Some(last) => (self.tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(burst),
        };
        self.last = Some(now);
    }
}

#[derive(Debug, Default)]
pub struct TokenBucket {
    lines: Bucket,
    bytes: Bucket,
    /// Lines dropped since the last summary.
    suppressed: u64,
    last_report: Option<Instant>,
}

impl TokenBucket {
    /// Takes tokens for lines of the given byte lengths, in order, while
    /// both budgets allow; returns how many of the first lines may be logged.
    pub fn take(&mut self, lengths: impl IntoIterator<Item = usize>, limit: LogLimit, now: Instant) -> u64 {
        let (by_lines, by_bytes) = (limit.rate > 0, limit.bytes > 0);
        if by_lines {
            self.lines
                .refill(f64::from(limit.rate), f64::from(limit.burst.max(1)), now);
        }
        if by_bytes {
            self.bytes
                .refill(limit.bytes as f64, limit.bytes_burst.max(1) as f64, now);
        }
        let mut granted = 0;
        for len in lengths {
            let len = len as f64;
            if (by_lines && self.lines.tokens < 1.0) || (by_bytes && self.bytes.tokens < len) {
                break;
            }
            if by_lines {
                self.lines.tokens -= 1.0;
            }
            if by_bytes {
                self.bytes.tokens -= len;
            }
            granted += 1;
        }
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

    #[test]
    fn a_plugin_keeps_its_budget_under_its_name() {
        let budgets = LogBudgets::default();
        let t0 = Instant::now();
        let a = budgets.of("a");
        assert_eq!(a.lock().unwrap().take(ones(50), LIMIT, t0), 20);
        assert_eq!(
            budgets.of("a").lock().unwrap().take(ones(5), LIMIT, t0),
            0,
            "spent"
        );
        assert_eq!(
            budgets.of("b").lock().unwrap().take(ones(5), LIMIT, t0),
            5,
            "its own"
        );
    }

    const LIMIT: LogLimit = LogLimit {
        rate: 10,
        burst: 20,
        bytes: 0,
        bytes_burst: 0,
    };

    fn ones(n: usize) -> impl Iterator<Item = usize> {
        std::iter::repeat_n(1, n)
    }

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        assert_eq!(b.take(ones(50), LIMIT, t0), 20, "a full bucket allows the burst");
        assert_eq!(b.take(ones(5), LIMIT, t0), 0, "then nothing until refilled");
        assert_eq!(
            b.take(ones(50), LIMIT, t0 + Duration::from_millis(500)),
            5,
            "10/s for half a second"
        );
        assert_eq!(
            b.take(ones(50), LIMIT, t0 + Duration::from_secs(100)),
            20,
            "refill stops at the burst"
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::default();
        let off = LogLimit {
            rate: 0,
            burst: 0,
            bytes: 0,
            bytes_burst: 0,
        };
        assert_eq!(b.take(ones(1_000_000), off, Instant::now()), 1_000_000);
    }

    #[test]
    fn bytes_are_limited_as_well_as_lines() {
        // 100 lines/s would let 16 KiB lines through at 1.6 MB/s (issue 16).
        let limit = LogLimit {
            rate: 100,
            burst: 500,
            bytes: 64 << 10,
            bytes_burst: 256 << 10,
        };
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        let line = 16 << 10;
        assert_eq!(
            b.take(std::iter::repeat_n(line, 100), limit, t0),
            16,
            "the byte burst"
        );
        let mut logged = 0;
        for ms in (100..=10_000).step_by(100) {
            logged += b.take(
                std::iter::repeat_n(line, 10),
                limit,
                t0 + Duration::from_millis(ms),
            );
        }
        // 10 s at 64 KiB/s: 40 lines of 16 KiB, not the 1000 lines allows.
        assert_eq!(logged, 40);
        // Small lines are held by the line rate instead.
        let mut b = TokenBucket::default();
        assert_eq!(b.take(ones(1000), limit, t0), 500);
    }

    #[test]
    fn summaries_at_most_once_a_second() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        assert_eq!(b.suppressed(0, t0), None);
        assert_eq!(b.suppressed(3, t0), Some(3));
        assert_eq!(b.suppressed(4, t0 + Duration::from_millis(10)), None);
        assert_eq!(b.suppressed(1, t0 + Duration::from_millis(20)), None);
        assert_eq!(b.suppressed(2, t0 + Duration::from_millis(1100)), Some(7));
    }
}
