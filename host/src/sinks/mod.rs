//! Where routed events go besides handlers. One module per sink type behind
//! the small [`Sink`] trait.

mod file;
mod stdout;

use std::io;

pub use file::NdjsonFile;
pub use stdout::Stdout;

use crate::config::SinkConfig;

/// A destination for routed events, shared by all workers.
pub trait Sink: Send + Sync {
    /// Appends one envelope (compact JSON, no newline). May buffer.
    fn write(&self, event_json: &[u8]) -> io::Result<()>;
    /// Pushes buffered lines to the operating system.
    fn flush(&self) -> io::Result<()>;
}

pub fn open(config: &SinkConfig) -> io::Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::File { path } => Box::new(NdjsonFile::open(path)?),
        SinkConfig::Stdout => Box::new(Stdout),
    })
}
