//! Reading: complete lines from each followed file, turned into events (or
//! dead letters), submitted in batches with backpressure; replies collected
//! in order; truncation handled once what was read before it is handled.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Batch, Halt, Look, Tail, Tailer, CHUNK, ROTATED_LOOK};
use crate::dead_letter::BadLine;
use crate::event::Event;
use crate::pipeline::{Ack, Handled, SubmitError};
use crate::sources::tail::checkpoint::{FileRecord, FileState};
use crate::sources::tail::identity::{read_full_at, read_head, Fingerprint, LineMark};
use crate::sources::tail::lines::{strip_cr, Item};
use crate::sources::tail::parse::to_event;
use crate::telemetry::Stats;

/// A line read, turned into what happens to it.
pub(super) enum Out {
    Event(Event),
    Bad(BadOut),
    /// Empty or whitespace only: nothing to handle.
    Blank,
}

pub(super) struct BadOut {
    pub(super) reason: &'static str,
    pub(super) message: String,
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) bytes: Vec<u8>,
}

/// What became of a submit.
enum Submitted {
    /// Per event, what says when it is handled (none with a durable queue).
    Accepted(Vec<Handled>),
    /// The queue cannot write (a full disk), for this reason.
    Unavailable(String),
    /// The batch is more than the queue ever holds at once (`[queue]
    /// max_bytes`, `[server] queue`), as this error says.
    TooBig(String),
}

pub(super) struct Parsed {
    pub(super) out: Out,
    pub(super) end: u64,
    pub(super) mark: Option<LineMark>,
}

impl Tail {
    /// Reads one chunk from every file that has more; true if any had.
    pub(super) fn read_all(&mut self) -> Result<bool, Halt> {
        if self.pause.remaining().is_some() {
            return Ok(false);
        }
        let mut progressed = false;
        let mut i = 0;
        while i < self.tailers.len() {
            if self.signal.stopping() {
                return Err(Halt::Stop);
            }
            progressed |= self.read_one(i)?;
            i += 1;
        }
        Ok(progressed)
    }

    fn read_one(&mut self, i: usize) -> Result<bool, Halt> {
        let t = &mut self.tailers[i];
        if t.state == FileState::Rotated && Instant::now() < t.next_look {
            return Ok(false);
        }
        let meta = match t.file.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot stat an open file");
                return Ok(false);
            }
        };
        let size = meta.len();
        let pos = t.lines.read_pos();
        if size < pos {
            self.truncated(i, size)?;
            return Ok(true);
        }
        if size == pos {
            t.size = size;
            if t.state == FileState::Rotated {
                t.next_look = Instant::now() + ROTATED_LOOK;
            }
            if t.state == FileState::Active && meta.nlink() == 0 {
                t.state = FileState::Rotated;
                Stats::add(&self.stats.tail_rotations, 1);
                tracing::info!(file = %t.path.display(), "deleted: read to its end");
                self.dirty = true;
            }
            return Ok(false);
        }
        // It grew. Same first bytes? A file truncated and written past our
        // offset between two looks is told by them.
        let head = match read_head(&t.file, size) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot read");
                return Ok(false);
            }
        };
        if !t.fp.is_prefix_of(&head) {
            self.truncated(i, size)?;
            return Ok(true);
        }
        if head.len() as u64 > t.fp.len {
            t.fp = Fingerprint::of(&head);
            t.head = head;
            self.dirty = true;
        }
        let want = ((size - pos) as usize).min(CHUNK);
        let got = match read_full_at(&t.file, &mut self.chunk[..want], pos) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot read");
                return Ok(false);
            }
        };
        t.size = size;
        t.grew = Instant::now();
        // Where reading goes on if the queue refuses these lines.
        let before = (t.lines.consumed(), t.last_line);
        // Both buffers are kept from one read to the next.
        let chunk = std::mem::take(&mut self.chunk);
        let mut parsed = std::mem::take(&mut self.parsed);
        self.parse(i, &chunk[..got], &mut parsed);
        self.chunk = chunk;
        let result = self.submit_parsed(i, before, parsed.drain(..));
        self.parsed = parsed;
        result?;
        Ok(got > 0)
    }

    fn parse(&mut self, i: usize, chunk: &[u8], out: &mut Vec<Parsed>) {
        let max_line = self.max_line;
        let format = &self.cfg.format;
        let Tailer {
            lines,
            source,
            path_str,
            last_line,
            ..
        } = &mut self.tailers[i];
        let before = out.len();
        lines.feed(chunk, |item| {
            let end = item.end();
            match item {
                Item::Line { offset, content } => {
                    let mark = Some(LineMark::of_line(content));
                    let text = strip_cr(content);
                    let bad = |reason, message| {
                        Out::Bad(BadOut {
                            reason,
                            message,
                            offset,
                            len: content.len() as u64,
                            bytes: text.to_vec(),
                        })
                    };
                    let o = match std::str::from_utf8(text) {
                        Err(e) => bad(
                            "invalid_utf8",
                            format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to()),
                        ),
                        Ok(s) if s.trim().is_empty() => Out::Blank,
                        Ok(s) => match to_event(format, s, source) {
                            Ok(mut ev) => {
                                ev.meta.insert("file".into(), Value::String(path_str.clone()));
                                ev.meta.insert("offset".into(), Value::from(offset));
                                Out::Event(ev)
                            }
                            Err(msg) => bad("unparsable", msg),
                        },
                    };
                    out.push(Parsed { out: o, end, mark });
                }
                Item::TooLong { offset, len, prefix } => out.push(Parsed {
                    out: Out::Bad(BadOut {
                        reason: "too_long",
                        message: format!("the line is {len} bytes, longer than max_line ({max_line} bytes)"),
                        offset,
                        len,
                        bytes: prefix,
                    }),
                    end,
                    mark: None,
                }),
            }
        });
        if out.len() > before {
            *last_line = out.last().and_then(|p| p.mark);
        }
    }

    /// Submits the lines parsed from one read, which started after the
    /// line `before` (its end and mark) ends; when the queue cannot write,
    /// the file is read again from the first line refused, after a pause.
    fn submit_parsed(
        &mut self,
        i: usize,
        before: (u64, Option<LineMark>),
        parsed: impl ExactSizeIterator<Item = Parsed>,
    ) -> Result<(), Halt> {
        let key = self.tailers[i].key;
        let (mut from, mut from_line) = before;
        let mut rest = parsed.peekable();
        while rest.peek().is_some() {
            let n = rest.len().min(self.batch_max);
            let mut events = Vec::with_capacity(n);
            let mut bad = Vec::new();
            let (mut end, mut end_line) = (0, None);
            for p in rest.by_ref().take(n) {
                (end, end_line) = (p.end, p.mark);
                match p.out {
                    Out::Event(ev) => events.push(ev),
                    Out::Bad(b) => bad.push(b),
                    Out::Blank => {}
                }
            }
            let n = events.len() as u64;
            let handled = if events.is_empty() {
                Vec::new()
            } else {
                match self.submit(events)? {
                    Submitted::Accepted(handled) => {
                        Stats::add(&self.stats().tail_lines, n);
                        handled
                    }
                    Submitted::Unavailable(reason) => {
                        Stats::add(&self.stats.tail_queue_unavailable, 1);
                        self.pause.refused(&self.cfg.path, &self.tailers[i].path, &reason);
                        self.reread(i, from, from_line);
                        return Ok(());
                    }
                    Submitted::TooBig(why) if self.batch_max > 1 => {
                        self.batch_max /= 2;
                        tracing::info!(source = %self.cfg.path.display(), batch = self.batch_max, why, "a batch of lines is more than the queue ever takes at once; submitting smaller ones");
                        self.reread(i, from, from_line);
                        return Ok(());
                    }
                    Submitted::TooBig(why) => {
                        tracing::error!(source = %self.cfg.path.display(), file = %self.tailers[i].path.display(), offset = from, why, "one line's event is more than the queue ever takes; stopping before it");
                        return Err(Halt::Failed);
                    }
                }
            };
            if !bad.is_empty() {
                self.write_bad(i, &bad)?;
            }
            self.in_flight.push_back(Batch {
                tailer: key,
                end,
                end_line,
                events: n,
                handled,
                next: 0,
            });
            self.tailers[i].in_flight += 1;
            (from, from_line) = (end, end_line);
        }
        Ok(())
    }

    /// Submits events, waiting for room: while the queue is full nothing
    /// more is read (backpressure), but completions are collected and
    /// checkpoints written, and new files are opened so that none rotates
    /// away unseen. Once accepted, returns what says when each event is
    /// handled (none with a durable queue: accepted is enough).
    fn submit(&mut self, events: Vec<Event>) -> Result<Submitted, Halt> {
        let submitter = self.submitter.clone();
        let ack = if self.durable { Ack::Accepted } else { Ack::Handled };
        let mut fut = submitter.submit(events, ack);
        loop {
            let mut cx = Context::from_waker(&self.waker);
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(receipt)) => {
                    self.pause.accepted(&self.cfg.path);
                    return Ok(Submitted::Accepted(receipt.handled));
                }
                Poll::Ready(Err(SubmitError::Unavailable { reason })) => {
                    return Ok(Submitted::Unavailable(reason))
                }
                // From a submit that waits for room: room enough never comes.
                Poll::Ready(Err(e @ (SubmitError::Backlog { .. } | SubmitError::TooLarge { .. }))) => {
                    return Ok(Submitted::TooBig(e.to_string()))
                }
                Poll::Ready(Err(SubmitError::Closed)) => return Err(Halt::Stop),
                Poll::Ready(Err(e)) => {
                    tracing::error!(source = %self.cfg.path.display(), error = %e, "cannot submit");
                    return Err(Halt::Failed);
                }
                Poll::Pending => {
                    if self.signal.stopping() {
                        return Err(Halt::Stop);
                    }
                    self.poll_completions()?;
                    self.maybe_save();
                    if self.signal.scan.swap(false, Ordering::AcqRel) {
                        self.scan(Look::Live);
                    }
                    let _ = self.wake.recv_timeout(Duration::from_millis(100));
                }
            }
        }
    }

    /// Reading of file `i` goes on at `from` (a line's end, whose mark is
    /// `from_line`): lines the queue did not take are never skipped, and
    /// their bad lines, not written yet, are met again too.
    fn reread(&mut self, i: usize, from: u64, from_line: Option<LineMark>) {
        let t = &mut self.tailers[i];
        t.lines.reset(from);
        t.last_line = from_line;
    }

    /// Writes lines that are not events to dead letters, flushed: they are
    /// then as handled as an event is.
    pub(super) fn write_bad(&mut self, i: usize, bad: &[BadOut]) -> Result<(), Halt> {
        let t = &self.tailers[i];
        for b in bad {
            let letter = BadLine {
                reason: b.reason,
                message: &b.message,
                source: &t.source,
                file: &t.path_str,
                offset: b.offset,
                len: b.len,
                bytes: &b.bytes,
            };
            // The dead-letter log counts the failure and carries the letters
            // it could not write in the log; the checkpoint stays before it.
            if let Err(e) = self.dead_letters.write_bad_line(&letter) {
                tracing::error!(file = %t.path.display(), offset = b.offset, reason = b.reason, error = %e, "cannot write a dead letter for a line that is not an event");
                return Err(Halt::Failed);
            }
            tracing::debug!(file = %t.path.display(), offset = b.offset, reason = b.reason, message = %b.message, "line is not an event");
        }
        Stats::add(&self.stats.tail_bad_lines, bad.len() as u64);
        let first = &bad[0];
        tracing::warn!(file = %t.path.display(), offset = first.offset, reason = first.reason, message = %first.message, lines = bad.len(), "lines that are not events went to dead letters");
        if let Err(e) = self.dead_letters.flush() {
            tracing::error!(path = %self.dead_letters.path().display(), error = %e, "cannot flush dead letters");
            return Err(Halt::Failed);
        }
        Ok(())
    }

    /// Notes the batches whose events have all been handled, in order.
    pub(super) fn poll_completions(&mut self) -> Result<(), Halt> {
        let mut cx = Context::from_waker(&self.waker);
        while let Some(b) = self.in_flight.front_mut() {
            while b.next < b.handled.len() {
                match Pin::new(&mut b.handled[b.next]).poll(&mut cx) {
                    Poll::Ready(Ok(report)) if report.unwritten => {
                        let file = self
                            .tailers
                            .iter()
                            .find(|t| t.key == b.tailer)
                            .map(|t| t.path.display().to_string());
                        tracing::error!(file = ?file, before = b.end, "a dead letter of these lines could not be written (it is in the daemon's log); the checkpoint stays before them");
                        return Err(Halt::Failed);
                    }
                    Poll::Ready(Ok(_)) => b.next += 1,
                    Poll::Ready(Err(_)) => {
                        let file = self
                            .tailers
                            .iter()
                            .find(|t| t.key == b.tailer)
                            .map(|t| t.path.display().to_string());
                        tracing::error!(file = ?file, before = b.end, "an event was dropped without being handled (a worker died)");
                        return Err(Halt::Failed);
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            let b = self.in_flight.pop_front().expect("front exists");
            Stats::add(&self.stats.tail_lines_handled, b.events);
            if let Some(t) = self.tailers.iter_mut().find(|t| t.key == b.tailer) {
                t.committed = b.end;
                t.committed_line = b.end_line;
                t.in_flight -= 1;
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Waits until every batch of the tailer `key` is complete.
    fn drain(&mut self, key: u64) -> Result<(), Halt> {
        while self.in_flight.iter().any(|b| b.tailer == key) {
            self.poll_completions()?;
            if self.in_flight.iter().any(|b| b.tailer == key) {
                let _ = self.wake.recv_timeout(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The file shrank or its first bytes changed: copytruncate (or a
    /// rewrite). Reads the rest from the copy when found, then the file
    /// again from 0.
    fn truncated(&mut self, i: usize, size: u64) -> Result<(), Halt> {
        let key = self.tailers[i].key;
        self.drain(key)?;
        let stats = &self.stats;
        Stats::add(&stats.tail_truncations, 1);
        let t = &mut self.tailers[i];
        let consumed = t.lines.consumed();
        // Bytes we saw in the file and had not made lines of.
        let unread = t.size.max(t.lines.read_pos()).saturating_sub(consumed);
        let old = FileRecord::new(&t.path, t.id, t.fp, consumed, t.last_line, FileState::Truncated);
        let head = read_head(&t.file, size).unwrap_or_default();
        t.key = self.next_key;
        self.next_key += 1;
        t.fp = Fingerprint::of(&head);
        t.head = head;
        t.lines.reset(0);
        t.last_line = None;
        t.committed = 0;
        t.committed_line = None;
        t.size = size;
        t.grew = Instant::now();
        let path = t.path.clone();
        self.dirty = true;
        let copies_before = self.tailers.len();
        self.truncated_content(old);
        let copied = self.tailers.len() > copies_before;
        if copied {
            tracing::info!(file = %path.display(), offset = consumed, "truncated (copytruncate): reading on from the copy, and the file again from 0");
        } else if unread > 0 {
            Stats::add(&self.stats.tail_copytruncate_lost_bytes, unread);
            tracing::warn!(file = %path.display(), offset = consumed, bytes = unread, "truncated before these bytes were read and no copy was found: they are lost");
        } else {
            tracing::info!(file = %path.display(), offset = consumed, "truncated (copytruncate): reading again from 0");
        }
        Ok(())
    }
}
