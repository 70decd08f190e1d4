//! `type = "file"`: envelopes appended to a file, one per line. The writer
//! is [`NdjsonFile`] (shared with the dead-letter log); this is its face as
//! a sink. Settings and their validation: `config::sink::file`.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::{Sink, SinkContext, SinkError};
use crate::config::FileSinkConfig;
use crate::ndjson::NdjsonFile;

/// A file sink: the file, shared with the daemon's [`SinkContext`], which
/// fsyncs it when the queue settles (issue 12).
pub struct FileSink(Arc<NdjsonFile>);

impl FileSink {
    /// Opens the file; inside the daemon (`ctx`), lines that reach it are
    /// counted in `sink_writes_total` and [`SinkContext::settle`] fsyncs it.
    pub fn open(name: &str, config: &FileSinkConfig, ctx: Option<&SinkContext>) -> io::Result<FileSink> {
        let file = NdjsonFile::open(&config.path)?;
        Ok(FileSink(match ctx {
            Some(ctx) => {
                let file = Arc::new(file.counting(ctx.stats.metrics.sink(name).writes.clone()));
                ctx.register_file(&file);
                file
            }
            None => Arc::new(file),
        }))
    }
}

impl Sink for FileSink {
    fn write(&self, event_json: &[u8]) -> Result<(), SinkError> {
        self.0.write(event_json)
    }

    fn flush(&self) -> Result<(), SinkError> {
        self.0.flush()
    }

    /// Writes what is buffered; a file has nothing in flight to wait for.
    fn close(&self, _deadline: Instant) -> Result<(), SinkError> {
        self.0.flush()
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }

    fn reopen(&self) -> io::Result<()> {
        self.0.reopen()
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
            Box::new(FileSink::open("out", &FileSinkConfig { path: path.clone() }, None).unwrap());
        sink.write(b"{}").unwrap();
        sink.close(Instant::now()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        let full: Box<dyn Sink> = Box::new(
            FileSink::open(
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
