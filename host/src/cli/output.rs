//! Standard output of the commands. A reader that goes away before the
//! output ends (`switchyard tail | head -1`, `dead-letter list | head`) ends
//! the output there and is not an error: the command exits as it would
//! have, had everything been read. That is how `cat`, `grep` or `git` end
//! under a closed pipe; a Rust program ignores SIGPIPE, so without this a
//! closed pipe is an `EPIPE` error (or a `println!` panic).

use std::fmt::Display;
use std::io::{self, Write};

/// The reader of standard output went away (`EPIPE`): the output ends
/// there, by the reader's choice.
#[derive(Debug, thiserror::Error)]
#[error("the reader of standard output went away")]
pub struct Closed;

/// Whether `e` is [`Closed`]: not a failure of the command.
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.is::<Closed>()
}

/// Standard output (or, in tests, a writer standing for it); each write is
/// flushed, so that every line reaches the reader as it is written.
pub struct Output<W: Write> {
    out: W,
}

/// The process's standard output, locked for the command.
pub fn stdout() -> Output<io::StdoutLock<'static>> {
    Output::new(io::stdout().lock())
}

impl<W: Write> Output<W> {
    pub fn new(out: W) -> Output<W> {
        Output { out }
    }

    /// `text` and a newline. Errors: [`Closed`], or the write error.
    pub fn line(&mut self, text: impl Display) -> anyhow::Result<()> {
        let written = writeln!(self.out, "{text}");
        self.flushed(written)
    }

    /// `text` as it is (it ends its own lines).
    pub fn text(&mut self, text: &str) -> anyhow::Result<()> {
        let written = self.out.write_all(text.as_bytes());
        self.flushed(written)
    }

    /// `bytes` (one line without its newline) and a newline.
    pub fn bytes_line(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let written = self.out.write_all(bytes).and_then(|()| self.out.write_all(b"\n"));
        self.flushed(written)
    }

    fn flushed(&mut self, written: io::Result<()>) -> anyhow::Result<()> {
        written.and_then(|()| self.out.flush()).map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                anyhow::Error::new(Closed)
            } else {
                anyhow::Error::new(e).context("cannot write to standard output")
            }
        })
    }

    /// The writer, for tests to read what was written.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe whose reader has gone.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A full disk behind a redirection.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_closed_and_other_errors_are_errors() {
        let mut out = Output::new(Vec::new());
        out.line("a").unwrap();
        out.bytes_line(b"b").unwrap();
        out.text("c\n").unwrap();
        assert_eq!(out.into_inner(), b"a\nb\nc\n");
        let e = Output::new(Gone).line("x").unwrap_err();
        assert!(is_closed(&e), "{e:#}");
        let e = Output::new(Full).text("x").unwrap_err();
        assert!(!is_closed(&e));
        assert!(
            format!("{e:#}").starts_with("cannot write to standard output: No space left on device"),
            "{e:#}"
        );
    }
}
