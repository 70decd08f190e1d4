//! `type = "stdout"`: envelopes on the daemon's stdout, one per line (logs
//! go to stderr). It has no settings (`config::SinkConfig::Stdout`).

use std::io::{self, Write};
use std::time::Instant;

use super::{Sink, SinkError};

pub struct Stdout;

impl Sink for Stdout {
    fn write(&self, line: &[u8]) -> Result<(), SinkError> {
        let mut out = io::stdout().lock();
        out.write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| SinkError::one(e, line))
    }

    /// Lines already taken by stdout's buffer cannot be told apart: a
    /// failed flush hands none back.
    fn flush(&self) -> Result<(), SinkError> {
        io::stdout().lock().flush().map_err(|error| SinkError {
            error,
            unwritten: Vec::new(),
        })
    }

    fn close(&self, _deadline: Instant) -> Result<(), SinkError> {
        self.flush()
    }
}
