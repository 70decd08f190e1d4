//! `type = "stdout"` sinks: no settings of their own.

use super::RawSink;
use crate::config::validate::Validator;

impl Validator<'_> {
    /// Whether the table is a valid stdout sink: it takes no path.
    pub fn stdout_sink(&mut self, name: &str, s: &RawSink) -> bool {
        match &s.path {
            None => true,
            Some(path) => {
                self.error(
                    Some(path.span()),
                    format!("sink.{name}.path: a \"stdout\" sink takes no path"),
                );
                false
            }
        }
    }
}
