//! The dead-letter log: one NDJSON line per failure, with the event, so that
//! nothing accepted is lost.
//!
//! When the log cannot be written (a full disk), each letter that could not
//! be is carried whole in the daemon's own log (an error line with the
//! letter in its `letter` field), counted in `dead_letters_lost_total`; the
//! failed writes themselves in `dead_letter_write_errors_total` (issue 17).

use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::envelope::{self, Event};
use crate::ndjson::{NdjsonFile, SinkError};
use crate::telemetry::Stats;

/// Why an event (or one handler's run on it) ended here.
pub mod reason {
    /// A route's `require` keys were missing; its handlers did not run.
    pub const MISSING_KEYS: &str = "missing_keys";
    /// An emitted event was deeper than `[router] hop_limit`.
    pub const HOP_LIMIT: &str = "hop_limit";
    /// A root event's cascade hit its budget (`[router] max_cascade`
    /// events, `max_cascade_bytes` bytes): emits past it were refused to the
    /// guests; one letter per root event, carrying the root (issue 16).
    pub const CASCADE_LIMIT: &str = "cascade_limit";
    /// A route names a plugin that is not loaded.
    pub const UNAVAILABLE: &str = "unavailable";
    /// A sink could not write the event.
    pub const SINK_ERROR: &str = "sink_error";
    /// A line of a tailed file that is not an event ([`super::BadLine`]).
    pub const BAD_LINE: &str = "bad_line";
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
    /// A failure kind (`trap`, `out_of_fuel`, ...) or a [`reason`].
    pub kind: &'a str,
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
    kind: &'a str,
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

    pub fn write(
        &self,
        event: &Event,
        route: Option<&str>,
        plugin: Option<&str>,
        kind: &str,
        message: &str,
    ) -> io::Result<()> {
        let letter = DeadLetter {
            time: envelope::now(),
            event,
            route,
            plugin,
            sink: None,
            kind,
            message,
        };
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        self.put(&line)
    }

    /// An event a sink could not write or deliver, as `kind = "sink_error"`,
    /// with the route that sent it there when known. Every such letter, from
    /// any sink, is counted in `sink_lines_unwritten`, which makes the exit
    /// status of `switchyard run` 3 (issue 18, item 3).
    pub fn write_sink(
        &self,
        event: &Event,
        route: Option<&str>,
        sink: &str,
        message: &str,
    ) -> io::Result<()> {
        let letter = DeadLetter {
            time: envelope::now(),
            event,
            route,
            plugin: None,
            sink: Some(sink),
            kind: reason::SINK_ERROR,
            message,
        };
        Stats::add(&self.stats.sink_lines_unwritten, 1);
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        self.put(&line)
    }

    /// A line of a tailed file that is not an event (not UTF-8, too long,
    /// unparsable, never completed), as `kind = "bad_line"`: the file, the
    /// byte offset of the line and the reason, with the line itself.
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
            time: envelope::now(),
            kind: reason::BAD_LINE,
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
        self.put(&line)
    }

    /// Writes the buffered letters; those that cannot be are in the log.
    pub fn flush(&self) -> io::Result<()> {
        self.file.flush().map_err(|e| self.lost(e))
    }

    /// Fsyncs what was written (see [`Sink::sync`]).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }
}
