//! The dead-letter log: one NDJSON line per failure, with the event, so that
//! nothing accepted is lost.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::envelope::{self, Event};
use crate::sinks::{NdjsonFile, Sink};

/// Why an event (or one handler's run on it) ended here.
pub mod reason {
    /// A route's `require` keys were missing; its handlers did not run.
    pub const MISSING_KEYS: &str = "missing_keys";
    /// An emitted event was deeper than `[router] hop_limit`.
    pub const HOP_LIMIT: &str = "hop_limit";
    /// A route names a plugin that is not loaded.
    pub const UNAVAILABLE: &str = "unavailable";
    /// A sink could not write the event.
    pub const SINK_ERROR: &str = "sink_error";
}

#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub time: String,
    pub event: &'a Event,
    pub route: Option<&'a str>,
    pub plugin: Option<&'a str>,
    /// A failure kind (`trap`, `out_of_fuel`, ...) or a [`reason`].
    pub kind: &'a str,
    pub message: &'a str,
}

pub struct DeadLetters {
    file: NdjsonFile,
}

impl DeadLetters {
    pub fn open(path: &Path) -> io::Result<DeadLetters> {
        Ok(DeadLetters {
            file: NdjsonFile::open(path)?,
        })
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
            kind,
            message,
        };
        let line = serde_json::to_vec(&letter).expect("a dead letter always serialises");
        self.file.write(&line)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.flush()
    }
}
