//! `type = "file"`: envelopes appended to a file, one per line. The writer
//! is [`NdjsonFile`] (shared with the dead-letter log); this is its face as
//! a sink. Settings and their validation: `config::sink::file`.

use std::io;
use std::time::Instant;

use super::{Sink, SinkContext, SinkError};
use crate::config::FileSinkConfig;
use crate::ndjson::NdjsonFile;

/// Opens the file; inside the daemon (`ctx`), lines that reach it are
/// counted in `sink_writes_total`.
pub fn open(name: &str, config: &FileSinkConfig, ctx: Option<&SinkContext>) -> io::Result<NdjsonFile> {
    let file = NdjsonFile::open(&config.path)?;
    Ok(match ctx {
        Some(ctx) => file.counting(ctx.stats.metrics.sink(name).writes.clone()),
        None => file,
    })
}

impl Sink for NdjsonFile {
    fn write(&self, event_json: &[u8]) -> Result<(), SinkError> {
        NdjsonFile::write(self, event_json)
    }

    fn flush(&self) -> Result<(), SinkError> {
        NdjsonFile::flush(self)
    }

    /// Writes what is buffered; a file has nothing in flight to wait for.
    fn close(&self, _deadline: Instant) -> Result<(), SinkError> {
        NdjsonFile::flush(self)
    }

    fn sync(&self) -> io::Result<()> {
        NdjsonFile::sync(self)
    }

    fn reopen(&self) -> io::Result<()> {
        NdjsonFile::reopen(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closing writes what workers left buffered, and hands back what the
    /// file refuses, like a flush.
    #[test]
    fn close_writes_what_is_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let sink: Box<dyn Sink> =
            Box::new(open("out", &FileSinkConfig { path: path.clone() }, None).unwrap());
        sink.write(b"{}").unwrap();
        sink.close(Instant::now()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        let full: Box<dyn Sink> = Box::new(
            open(
                "full",
                &FileSinkConfig {
                    path: "/dev/full".into(),
                },
                None,
            )
            .unwrap(),
        );
        full.write(b"{}").unwrap();
        assert_eq!(
            full.close(Instant::now()).unwrap_err().unwritten,
            vec![b"{}".to_vec()]
        );
    }
}
