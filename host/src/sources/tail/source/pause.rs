//! Pausing a tail source while the disk queue cannot write (issue 12: a
//! full disk pauses tail reading, logged and counted, and reading recovers
//! by itself). The refused lines are not skipped: the file is read again
//! from the first of them once the pause is over, with a backoff that
//! doubles while the queue keeps refusing.

use std::path::Path;
use std::time::{Duration, Instant};

/// The first pause after a refusal.
const FIRST: Duration = Duration::from_millis(100);
/// The longest pause: how long reading may lag behind the disk recovering.
const LONGEST: Duration = Duration::from_secs(5);

/// Whether reading waits, and how long the next pause lasts.
pub(super) struct Pause {
    /// Reading waits until then.
    until: Option<Instant>,
    /// The next pause: doubled after each refusal up to [`LONGEST`], back
    /// to [`FIRST`] once a submit is accepted.
    next: Duration,
    /// Refusals since the last accepted submit: the first is logged as a
    /// warning, the end of them once.
    refusals: u64,
}

impl Pause {
    pub(super) fn new() -> Pause {
        Pause {
            until: None,
            next: FIRST,
            refusals: 0,
        }
    }

    /// How long reading still waits; `None` when it does not.
    pub(super) fn remaining(&self) -> Option<Duration> {
        self.until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// The queue refused a submit of lines of `file` for `reason`: reading
    /// waits for the next backoff.
    pub(super) fn refused(&mut self, source: &Path, file: &Path, reason: &str) {
        self.refusals += 1;
        if self.refusals == 1 {
            tracing::warn!(source = %source.display(), file = %file.display(), reason, "the queue cannot write: tail reading paused; the refused lines are read again once it can");
        } else {
            tracing::debug!(source = %source.display(), file = %file.display(), reason, refusals = self.refusals, pause_ms = self.next.as_millis() as u64, "the queue still cannot write");
        }
        self.until = Some(Instant::now() + self.next);
        self.next = (self.next * 2).min(LONGEST);
    }

    /// A submit was accepted: reading goes on without pauses.
    pub(super) fn accepted(&mut self, source: &Path) {
        if self.refusals > 0 {
            tracing::info!(source = %source.display(), refusals = self.refusals, "the queue takes events again: tail reading resumed");
        }
        *self = Pause::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest_and_end_once_accepted() {
        let (source, file) = (Path::new("/var/log/*.log"), Path::new("/var/log/a.log"));
        let mut p = Pause::new();
        assert_eq!(p.remaining(), None);
        p.refused(source, file, "No space left on device");
        let first = p.remaining().expect("paused");
        assert!(first <= FIRST && first > FIRST / 2, "{first:?}");
        for _ in 0..10 {
            p.refused(source, file, "No space left on device");
        }
        let long = p.remaining().expect("paused");
        assert!(long <= LONGEST && long > LONGEST / 2, "{long:?}");
        p.accepted(source);
        assert_eq!(p.remaining(), None);
        p.refused(source, file, "No space left on device");
        assert!(p.remaining().expect("paused") <= FIRST, "the backoff starts over");
    }
}
