//! The dead-letter log: one NDJSON line per failure, with the event, so that
//! nothing accepted is lost (DESIGN.md: "an event is either refused to its
//! producer, or handled, or written to dead letters with a kind").
//!
//! Every letter has a [`DeadLetterKind`], the one list of kinds: the writer
//! sets it, counts it in `dead_letters_total{kind}`, and the CLI
//! (`dead-letter list|replay --kind`) reads it back. A letter carries its
//! event, except `bad_line` letters, which carry the tailed line that was
//! not one.
//!
//! When the log cannot be written (a full disk), each letter that could not
//! be is carried whole in the daemon's own log (an error line with the
//! letter in its `letter` field), counted in `dead_letters_lost_total`; the
//! failed writes themselves in `dead_letter_write_errors_total` (issue 17).

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{self, Event};
use crate::ndjson::{NdjsonFile, SinkError};
use crate::runtime::FailureKind;
use crate::telemetry::Stats;

/// Why an event (or one handler's run on it) went to dead letters: the
/// `kind` of every letter, the `kind` label of `dead_letters_total` (via
/// [`DeadLetterKind::as_str`]; telemetry takes the `&str`) and what
/// `dead-letter list|replay --kind` selects. One name per kind, the same
/// in letters, `?wait=true` answers, metrics and logs.
///
/// A handler's own failures are the runtime's [`FailureKind`]s, carried
/// whole (a kind added there is a dead-letter kind at once); the others are
/// the router's, the sinks' and the sources' reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterKind {
    /// A handler failed: `trap`, `out_of_fuel`, `timeout`, ...
    Failure(FailureKind),
    /// A route's `require` keys were missing; its handlers did not run.
    MissingKeys,
    /// An emitted event was deeper than `[router] hop_limit`.
    HopLimit,
    /// A root event's cascade hit its budget (`[router] max_cascade`
    /// events, `max_cascade_bytes` bytes): emits past it were refused to the
    /// guests; one letter per root event, carrying the root (issue 16).
    CascadeLimit,
    /// A route names a plugin that is not loaded.
    Unavailable,
    /// A sink could not write or deliver the event.
    SinkError,
    /// A line of a tailed file that is not an event ([`BadLine`]); the
    /// letter carries the line, not an event.
    BadLine,
    /// Bytes of the disk queue's log that are no valid record (a bad
    /// checksum or header, not at the end: issue 12); the letter carries
    /// them in base64 with their segment file and offset, not an event.
    CorruptRecord,
    /// An event whose handling crashed the daemon `[queue] max_deliveries`
    /// times; it is not delivered again.
    Poison,
}

/// The kinds that are not handler failures, in the order they are listed.
const REASONS: [DeadLetterKind; 8] = [
    DeadLetterKind::MissingKeys,
    DeadLetterKind::HopLimit,
    DeadLetterKind::CascadeLimit,
    DeadLetterKind::Unavailable,
    DeadLetterKind::SinkError,
    DeadLetterKind::BadLine,
    DeadLetterKind::CorruptRecord,
    DeadLetterKind::Poison,
];

impl DeadLetterKind {
    /// Every kind: the failure kinds in [`FailureKind::ALL`]'s order, then
    /// the reasons.
    pub const ALL: [DeadLetterKind; FailureKind::ALL.len() + REASONS.len()] = {
        let mut all = [DeadLetterKind::MissingKeys; FailureKind::ALL.len() + REASONS.len()];
        let mut i = 0;
        while i < FailureKind::ALL.len() {
            all[i] = DeadLetterKind::Failure(FailureKind::ALL[i]);
            i += 1;
        }
        let mut j = 0;
        while j < REASONS.len() {
            all[i + j] = REASONS[j];
            j += 1;
        }
        all
    };

    /// The name in letters and labels: `trap`, `missing_keys`, `bad_line`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Failure(kind) => kind.as_str(),
            DeadLetterKind::MissingKeys => "missing_keys",
            DeadLetterKind::HopLimit => "hop_limit",
            DeadLetterKind::CascadeLimit => "cascade_limit",
            DeadLetterKind::Unavailable => "unavailable",
            DeadLetterKind::SinkError => "sink_error",
            DeadLetterKind::BadLine => "bad_line",
            DeadLetterKind::CorruptRecord => "corrupt_record",
            DeadLetterKind::Poison => "poison",
        }
    }

    /// What the kind means, in a few words (the CLI's help).
    pub fn describe(self) -> &'static str {
        match self {
            DeadLetterKind::Failure(kind) => match kind {
                FailureKind::Trap => "the handler trapped",
                FailureKind::OutOfFuel => "the handler ran out of fuel",
                FailureKind::Timeout => "the handler passed its deadline",
                FailureKind::MemoryLimit => "the handler hit its memory cap",
                FailureKind::StackOverflow => "the handler overflowed its stack",
                FailureKind::HandlerError => "the handler reported failure",
                FailureKind::BadAbi => "the handler broke the ABI",
            },
            DeadLetterKind::MissingKeys => "a route's `require` keys were missing",
            DeadLetterKind::HopLimit => "an emitted event passed the hop limit",
            DeadLetterKind::CascadeLimit => "a cascade spent its budget",
            DeadLetterKind::Unavailable => "the handler is not loaded",
            DeadLetterKind::SinkError => "a sink could not write the event",
            DeadLetterKind::BadLine => "a tailed line that is not an event",
            DeadLetterKind::CorruptRecord => "a damaged record of the disk queue",
            DeadLetterKind::Poison => "handling the event crashed the daemon too often",
        }
    }
}

impl From<FailureKind> for DeadLetterKind {
    fn from(kind: FailureKind) -> DeadLetterKind {
        DeadLetterKind::Failure(kind)
    }
}

impl fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DeadLetterKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A name that is not a [`DeadLetterKind`].
#[derive(Debug, thiserror::Error)]
#[error("unknown dead-letter kind {0:?} (kinds: {list})", list = kind_list())]
pub struct UnknownKind(pub String);

fn kind_list() -> String {
    DeadLetterKind::ALL.map(DeadLetterKind::as_str).join(", ")
}

impl FromStr for DeadLetterKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<DeadLetterKind, UnknownKind> {
        DeadLetterKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_string()))
    }
}

#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub time: String,
    pub event: &'a Event,
    pub route: Option<&'a str>,
    pub plugin: Option<&'a str>,
    /// The sink that could not write or deliver the event (`sink_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<&'a str>,
    pub kind: DeadLetterKind,
    pub message: &'a str,
}

/// A line of a tailed file that is not an event, as the tail source saw it.
pub struct BadLine<'a> {
    /// Why, for machines: `invalid_utf8`, `too_long`, `unparsable`, `incomplete`.
    pub reason: &'a str,
    /// Why, for people.
    pub message: &'a str,
    /// `tail:<path>`.
    pub source: &'a str,
    pub file: &'a str,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Length of the line in bytes, without its line ending.
    pub len: u64,
    /// The line, or its beginning when it is longer than `max_line`.
    pub bytes: &'a [u8],
}

#[derive(Serialize)]
struct BadLineLetter<'a> {
    time: String,
    kind: DeadLetterKind,
    reason: &'a str,
    message: &'a str,
    source: &'a str,
    file: &'a str,
    offset: u64,
    len: u64,
    /// The line as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<&'a str>,
    /// The line's bytes, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    line_base64: Option<String>,
    /// Only the beginning of the line is here (it is longer than `max_line`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    line_cut: bool,
}

#[derive(Serialize)]
struct CorruptRecordLetter<'a> {
    time: String,
    kind: DeadLetterKind,
    message: &'a str,
    /// The segment file the bytes were in.
    segment: &'a str,
    /// Byte offset of the damage in it.
    offset: u64,
    len: u64,
    record_base64: String,
}

/// The log, shared by workers and by sinks that deliver in the background.
#[derive(Clone)]
pub struct DeadLetters {
    file: Arc<NdjsonFile>,
    stats: Arc<Stats>,
}

impl DeadLetters {
    /// Opens (creates) the log; its losses are counted in `stats`.
    pub fn open(path: &Path, stats: Arc<Stats>) -> io::Result<DeadLetters> {
        Ok(DeadLetters {
            file: Arc::new(NdjsonFile::open(path)?),
            stats,
        })
    }

    /// Buffers one letter. An error means that this letter or ones
    /// buffered before it could not be written: they are then in the log.
    fn put(&self, letter: &[u8]) -> io::Result<()> {
        self.file.write(letter).map_err(|e| self.lost(e))
    }

    /// Counts a failed write and carries each letter it could not write
    /// whole in the daemon's log, the only place left for it.
    fn lost(&self, e: SinkError) -> io::Error {
        Stats::add(&self.stats.dead_letter_errors, 1);
        Stats::add(&self.stats.dead_letters_lost, e.unwritten.len() as u64);
        for letter in &e.unwritten {
            tracing::error!(path = %self.path().display(), error = %e.error, letter = %String::from_utf8_lossy(letter), "dead letter not written to the dead-letter log; it is whole in this log line");
        }
        e.error
    }

    /// Opens the log again by its path (SIGHUP, reload).
    pub fn reopen(&self) -> io::Result<()> {
        self.file.reopen()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// An event that a route, a handler or the router could not handle, as
    /// `kind`, counted in `dead_letters_total{kind}` whether or not the
    /// write succeeded (a failed one is carried in the daemon's log).
    pub fn write(
        &self,
        event: &Event,
        route: Option<&str>,
        plugin: Option<&str>,
        kind: DeadLetterKind,
        message: &str,
    ) -> io::Result<()> {
        let letter = DeadLetter {
            time: event::now(),
            event,
            route,
            plugin,
            sink: None,
            kind,
            message,
        };
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        let written = self.put(&line);
        self.count(kind);
        written
    }

    /// An event a sink could not write or deliver, as `kind = "sink_error"`,
    /// with the route that sent it there when known. Every such letter, from
    /// any sink, is counted in `sink_lines_unwritten`, which makes the exit
    /// status of `switchyard run` 3 (issue 18, item 3); and, like
    /// [`DeadLetters::write`], in `dead_letters_total{kind="sink_error"}`.
    pub fn write_sink(
        &self,
        event: &Event,
        route: Option<&str>,
        sink: &str,
        message: &str,
    ) -> io::Result<()> {
        let letter = DeadLetter {
            time: event::now(),
            event,
            route,
            plugin: None,
            sink: Some(sink),
            kind: DeadLetterKind::SinkError,
            message,
        };
        Stats::add(&self.stats.sink_lines_unwritten, 1);
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        let written = self.put(&line);
        self.count(DeadLetterKind::SinkError);
        written
    }

    /// A line of a tailed file that is not an event (not UTF-8, too long,
    /// unparsable, never completed), as `kind = "bad_line"`: the file, the
    /// byte offset of the line and the reason, with the line itself. Counted
    /// in `dead_letters_total{kind="bad_line"}` once written: on an error the
    /// tail source stops before the line (its checkpoint stays before it).
    pub fn write_bad_line(&self, bad: &BadLine<'_>) -> io::Result<()> {
        let cut = (bad.bytes.len() as u64) < bad.len;
        let text = match std::str::from_utf8(bad.bytes) {
            Ok(text) => Some(text),
            // A beginning cut inside a character is still text.
            Err(e) if cut && e.error_len().is_none() => {
                std::str::from_utf8(&bad.bytes[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        let letter = BadLineLetter {
            time: event::now(),
            kind: DeadLetterKind::BadLine,
            reason: bad.reason,
            message: bad.message,
            source: bad.source,
            file: bad.file,
            offset: bad.offset,
            len: bad.len,
            line: text,
            line_base64: match text {
                Some(_) => None,
                None => Some(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bad.bytes,
                )),
            },
            line_cut: cut,
        };
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        self.put(&line)?;
        self.count(DeadLetterKind::BadLine);
        Ok(())
    }

    /// Bytes of the disk queue's `segment` at `offset` that are no valid
    /// record, as `kind = "corrupt_record"` with the bytes in base64.
    /// Counted in `dead_letters_total{kind="corrupt_record"}` once written.
    pub fn write_corrupt_record(
        &self,
        segment: &str,
        offset: u64,
        bytes: &[u8],
        message: &str,
    ) -> io::Result<()> {
        let letter = CorruptRecordLetter {
            time: event::now(),
            kind: DeadLetterKind::CorruptRecord,
            message,
            segment,
            offset,
            len: bytes.len() as u64,
            record_base64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
        };
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        self.put(&line)?;
        self.count(DeadLetterKind::CorruptRecord);
        Ok(())
    }

    /// One more letter of `kind` in `dead_letters_total`.
    fn count(&self, kind: DeadLetterKind) {
        self.stats.metrics.dead_letter(kind.as_str()).inc();
    }

    /// Writes the buffered letters; those that cannot be are in the log.
    pub fn flush(&self) -> io::Result<()> {
        self.file.flush().map_err(|e| self.lost(e))
    }

    /// Fsyncs what was written (as a file sink's `sync` does).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant is in `ALL`, so in `--kind` and its help: the match
    /// is exhaustive, so a new reason does not compile until it is listed.
    #[test]
    fn every_kind_is_listed() {
        let listed = |k: DeadLetterKind| match k {
            DeadLetterKind::Failure(_) => true,
            DeadLetterKind::MissingKeys
            | DeadLetterKind::HopLimit
            | DeadLetterKind::CascadeLimit
            | DeadLetterKind::Unavailable
            | DeadLetterKind::SinkError
            | DeadLetterKind::BadLine
            | DeadLetterKind::CorruptRecord
            | DeadLetterKind::Poison => REASONS.contains(&k),
        };
        for k in REASONS {
            assert!(listed(k));
        }
        for f in FailureKind::ALL {
            assert!(DeadLetterKind::ALL.contains(&DeadLetterKind::Failure(f)));
        }
        assert_eq!(DeadLetterKind::ALL.len(), FailureKind::ALL.len() + 8);
    }

    #[test]
    fn every_kind_has_one_name_that_parses_back() {
        let names: Vec<&str> = DeadLetterKind::ALL.map(DeadLetterKind::as_str).to_vec();
        assert_eq!(
            names,
            [
                "trap",
                "out_of_fuel",
                "timeout",
                "memory_limit",
                "stack_overflow",
                "handler_error",
                "bad_abi",
                "missing_keys",
                "hop_limit",
                "cascade_limit",
                "unavailable",
                "sink_error",
                "bad_line",
                "corrupt_record",
                "poison"
            ]
        );
        for kind in DeadLetterKind::ALL {
            assert_eq!(kind.as_str().parse::<DeadLetterKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for failure in FailureKind::ALL {
            assert_eq!(DeadLetterKind::from(failure).as_str(), failure.as_str());
        }
        let err = "nope".parse::<DeadLetterKind>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown dead-letter kind \"nope\" (kinds: trap, out_of_fuel, ")
                && err.ends_with(", sink_error, bad_line, corrupt_record, poison)"),
            "{err}"
        );
    }
}
