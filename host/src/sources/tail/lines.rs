//! Splits the bytes of a file into lines as they arrive, in pieces of any
//! size. Only complete lines (ended by `\n`) come out; a partial last line
//! waits for the rest. A line longer than `max_line` is not kept in memory:
//! its bytes are dropped as they arrive (a short prefix is kept for the dead
//! letter) until its newline, and reading goes on after it.

/// Bytes of an over-long line kept to show in its dead letter.
pub const PREFIX_KEPT: usize = 1024;

/// What the splitter found.
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    /// A complete line starting at byte `offset`; `content` excludes the
    /// `\n` (a `\r` before it is still there: see [`strip_cr`]).
    Line { offset: u64, content: &'a [u8] },
    /// A complete line longer than `max_line`: its `len` (without the `\n`)
    /// and its first bytes.
    TooLong { offset: u64, len: u64, prefix: Vec<u8> },
}

impl Item<'_> {
    /// The byte offset just after this line's `\n`.
    pub fn end(&self) -> u64 {
        match self {
            Item::Line { offset, content } => offset + content.len() as u64 + 1,
            Item::TooLong { offset, len, .. } => offset + len + 1,
        }
    }
}

/// The incomplete last line, taken when its file will never grow again.
#[derive(Debug, PartialEq)]
pub struct Partial {
    pub offset: u64,
    pub len: u64,
    /// All of it, or its first [`PREFIX_KEPT`] bytes when it is over-long.
    pub bytes: Vec<u8>,
}

pub struct LineSplitter {
    max_line: usize,
    /// File offset of the first byte of the current, incomplete line: every
    /// line before it has been handed out.
    start: u64,
    /// The current line so far, while it is not longer than `max_line`.
    buf: Vec<u8>,
    /// Once the current line is over-long: its length so far and prefix.
    over: Option<(u64, Vec<u8>)>,
}

/// `content` without one trailing `\r` (CRLF line endings).
pub fn strip_cr(content: &[u8]) -> &[u8] {
    content.strip_suffix(b"\r").unwrap_or(content)
}

impl LineSplitter {
    /// A splitter for bytes that start at file offset `start`.
    pub fn new(start: u64, max_line: usize) -> LineSplitter {
        LineSplitter {
            max_line,
            start,
            buf: Vec::new(),
            over: None,
        }
    }

    /// The offset just after the last complete line handed out.
    pub fn consumed(&self) -> u64 {
        self.start
    }

    /// The offset of the next byte to feed.
    pub fn read_pos(&self) -> u64 {
        self.start
            + match &self.over {
                Some((len, _)) => *len,
                None => self.buf.len() as u64,
            }
    }

    /// Feeds the next bytes of the file (those at [`Self::read_pos`]).
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(Item<'_>)) {
        let mut rest = chunk;
        if !self.buf.is_empty() || self.over.is_some() {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.extend_partial(rest);
                return;
            };
            self.extend_partial(&rest[..i]);
            rest = &rest[i + 1..];
            let offset = self.start;
            if let Some((len, prefix)) = self.over.take() {
                self.start += len + 1;
                emit(Item::TooLong { offset, len, prefix });
            } else {
                let line = std::mem::take(&mut self.buf);
                self.start += line.len() as u64 + 1;
                emit(Item::Line {
                    offset,
                    content: &line,
                });
                // Keep the allocation for the next partial line.
                self.buf = line;
                self.buf.clear();
            }
        }
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let content = &rest[..i];
            let offset = self.start;
            self.start += i as u64 + 1;
            if content.len() > self.max_line {
                emit(Item::TooLong {
                    offset,
                    len: i as u64,
                    prefix: content[..PREFIX_KEPT.min(content.len())].to_vec(),
                });
            } else {
                emit(Item::Line { offset, content });
            }
            rest = &rest[i + 1..];
        }
        self.extend_partial(rest);
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        if let Some((len, prefix)) = &mut self.over {
            *len += bytes.len() as u64;
            let room = PREFIX_KEPT.saturating_sub(prefix.len());
            prefix.extend_from_slice(&bytes[..room.min(bytes.len())]);
        } else if self.buf.len() + bytes.len() > self.max_line {
            let len = (self.buf.len() + bytes.len()) as u64;
            let mut prefix = std::mem::take(&mut self.buf);
            prefix.truncate(PREFIX_KEPT);
            let room = PREFIX_KEPT - prefix.len();
            prefix.extend_from_slice(&bytes[..room.min(bytes.len())]);
            self.over = Some((len, prefix));
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Takes the incomplete last line, if any, as if it had ended: for a
    /// file that will not grow again. Reading then goes on after it.
    pub fn take_partial(&mut self) -> Option<Partial> {
        let offset = self.start;
        let (len, bytes) = match self.over.take() {
            Some((len, prefix)) => (len, prefix),
            None if self.buf.is_empty() => return None,
            None => (self.buf.len() as u64, std::mem::take(&mut self.buf)),
        };
        self.start += len;
        Some(Partial { offset, len, bytes })
    }

    /// Forgets the incomplete line and starts again at `start`.
    pub fn reset(&mut self, start: u64) {
        self.start = start;
        self.buf.clear();
        self.over = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Out {
        Line(u64, String),
        Long(u64, u64, String),
    }

    fn feed_all(s: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<Out> {
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |item| {
                let end = item.end();
                let o = match item {
                    Item::Line { offset, content } => {
                        Out::Line(offset, String::from_utf8_lossy(content).into_owned())
                    }
                    Item::TooLong { offset, len, prefix } => {
                        Out::Long(offset, len, String::from_utf8_lossy(&prefix).into_owned())
                    }
                };
                assert!(end > 0);
                out.push(o);
            });
        }
        out
    }

    #[test]
    fn complete_lines_only_with_offsets() {
        let mut s = LineSplitter::new(100, 64);
        let out = feed_all(&mut s, &[b"a\nbb\nccc"]);
        assert_eq!(out, [Out::Line(100, "a".into()), Out::Line(102, "bb".into())]);
        assert_eq!((s.consumed(), s.read_pos()), (105, 108), "ccc waits");
        let out = feed_all(&mut s, &[b"c", b"\n"]);
        assert_eq!(out, [Out::Line(105, "cccc".into())]);
        assert_eq!((s.consumed(), s.read_pos()), (110, 110));
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_lines() {
        let input = b"first\r\nsecond\n\nthird line\nlast";
        let whole = feed_all(&mut LineSplitter::new(0, 64), &[input]);
        for cut in 0..input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(
                feed_all(&mut LineSplitter::new(0, 64), &[a, b]),
                whole,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed_all(&mut LineSplitter::new(0, 64), &bytes), whole);
        assert_eq!(
            whole,
            [
                Out::Line(0, "first\r".into()),
                Out::Line(7, "second".into()),
                Out::Line(14, "".into()),
                Out::Line(15, "third line".into()),
            ]
        );
    }

    #[test]
    fn crlf_is_stripped_once() {
        assert_eq!(strip_cr(b"a\r"), b"a");
        assert_eq!(strip_cr(b"a\r\r"), b"a\r");
        assert_eq!(strip_cr(b"a"), b"a");
    }

    #[test]
    fn over_long_lines_are_reported_and_skipped() {
        let long = "x".repeat(3000);
        let input = format!("ok\n{long}\nafter\n");
        let whole = feed_all(&mut LineSplitter::new(0, 100), &[input.as_bytes()]);
        let prefix = "x".repeat(PREFIX_KEPT);
        let expected = [
            Out::Line(0, "ok".into()),
            Out::Long(3, 3000, prefix.clone()),
            Out::Line(3004, "after".into()),
        ];
        assert_eq!(whole, expected);
        // Fed in small pieces the long line is never held whole.
        let mut s = LineSplitter::new(0, 100);
        let pieces: Vec<&[u8]> = input.as_bytes().chunks(7).collect();
        assert_eq!(feed_all(&mut s, &pieces), expected);
        assert!(s.buf.capacity() <= 200, "capacity {}", s.buf.capacity());
        // Exactly max_line is fine.
        let exact = format!("{}\n", "y".repeat(100));
        let out = feed_all(&mut LineSplitter::new(0, 100), &[exact.as_bytes()]);
        assert_eq!(out, [Out::Line(0, "y".repeat(100))]);
    }

    #[test]
    fn partial_line_taken_at_the_end() {
        let mut s = LineSplitter::new(0, 8);
        assert!(feed_all(&mut s, &[b"a\nbcd"]).len() == 1);
        assert_eq!(
            s.take_partial(),
            Some(Partial {
                offset: 2,
                len: 3,
                bytes: b"bcd".to_vec()
            })
        );
        assert_eq!((s.consumed(), s.read_pos()), (5, 5));
        assert_eq!(s.take_partial(), None);
        feed_all(&mut s, &[b"0123456789abc"]);
        let p = s.take_partial().unwrap();
        assert_eq!((p.offset, p.len, p.bytes.len()), (5, 13, 13));
        s.reset(0);
        assert_eq!((s.consumed(), s.read_pos()), (0, 0));
    }
}
