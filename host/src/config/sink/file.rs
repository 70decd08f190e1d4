//! `type = "file"` sinks: the file's path (the writer: `sinks::file`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::RawSink;
use crate::config::validate::Validator;

/// `[sink.NAME] type = "file"`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    /// Where envelopes are appended, resolved against the config file's
    /// directory.
    pub path: PathBuf,
}

impl Validator<'_> {
    /// `span` is the whole table, where a missing `path` is reported.
    pub fn file_sink(
        &mut self,
        name: &str,
        s: &RawSink,
        span: Range<usize>,
        base: &Path,
    ) -> Option<FileSinkConfig> {
        match &s.path {
            Some(path) => Some(FileSinkConfig {
                path: base.join(path.get_ref()),
            }),
            None => {
                self.error(Some(span), format!("sink.{name}: type \"file\" needs a path"));
                None
            }
        }
    }
}
