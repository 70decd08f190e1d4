//! Envelopes on the daemon's stdout, one per line (logs go to stderr).

use std::io::{self, Write};

use super::Sink;

pub struct Stdout;

impl Sink for Stdout {
    fn write(&self, line: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(line)?;
        out.write_all(b"\n")
    }

    fn flush(&self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}
