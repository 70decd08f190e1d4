//! `type = "stdout"`: envelopes on the daemon's stdout, one per line (logs
//! go to stderr). It has no settings (`config::SinkConfig::Stdout`).

use std::io::{self, Write};
use std::time::Instant;

use super::{Sink, SinkContext, SinkError};
use prometheus_client::metrics::counter::Counter;

pub struct Stdout {
    /// `sink_writes_total`, inside the daemon: a line stdout took has
    /// reached the sink's target (issue 18, item 4).
    writes: Option<Counter>,
}

/// Opens the sink; inside the daemon (`ctx`), lines it takes are counted.
pub fn open(name: &str, ctx: Option<&SinkContext>) -> Stdout {
    Stdout {
        writes: ctx.map(|ctx| ctx.stats.metrics.sink(name).writes.clone()),
    }
}

impl Sink for Stdout {
    fn write(&self, line: &[u8]) -> Result<(), SinkError> {
        let mut out = io::stdout().lock();
        out.write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| SinkError::one(e, line))?;
        if let Some(writes) = &self.writes {
            writes.inc();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sink_writes_total` counts the lines stdout took (issue 18, item 4),
    /// counted by the sink itself as the file and webhook sinks do.
    #[test]
    fn a_line_stdout_took_is_counted() {
        let writes = Counter::default();
        let sink = Stdout {
            writes: Some(writes.clone()),
        };
        sink.write(b"{}").unwrap();
        sink.close(Instant::now()).unwrap();
        assert_eq!(writes.get(), 1);
    }
}
