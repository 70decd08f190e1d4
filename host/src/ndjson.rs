//! Append-only NDJSON file, one JSON document per line: the writer under
//! the `file` sink and under the dead-letter log. A leaf: it imports nothing of the crate, so
//! that the dead-letter log does not depend on the sinks.
//!
//! Two rules from issue 17:
//! - A full disk never leaves a partial line and never loses a line
//!   silently: a write that stops inside a line (ENOSPC after a short
//!   write) is cut back to the last whole line, and every line not written
//!   is handed back to the caller in a [`SinkError`] (the pipeline's
//!   workers dead-letter it; the dead-letter log carries it whole in the daemon's
//!   log).
//! - A file deleted, renamed away or replaced is not written into the void:
//!   before each write the path is checked (one `stat`) against the open
//!   file's device and inode, and opened again when it names another file
//!   or none; [`NdjsonFile::reopen`] does it unconditionally (SIGHUP and
//!   reload, logrotate's `postrotate` convention).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;

/// A write or flush that failed, with the lines it could not write (each
/// one whole document, without its newline), so that the caller can put
/// them elsewhere: nothing accepted ends up nowhere (issue 17). Also the
/// error of every sink's write, re-exported by the sinks.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SinkError {
    pub error: io::Error,
    pub unwritten: Vec<Vec<u8>>,
}

impl SinkError {
    /// `line` could not be written, for `error`.
    pub fn one(error: io::Error, line: &[u8]) -> SinkError {
        SinkError {
            error,
            unwritten: vec![line.to_vec()],
        }
    }
}

/// Bytes of whole lines buffered before they are written without waiting
/// for a flush.
const CAPACITY: usize = 64 << 10;

pub struct NdjsonFile {
    path: PathBuf,
    /// Lines buffered by whichever worker wrote them, flushed by the next
    /// flush from any worker.
    state: Mutex<State>,
    /// Counts lines that reached the file (`sink_writes_total`), for sinks;
    /// the dead-letter log has none (issue 18, item 4).
    written: Option<Counter>,
}

struct State {
    file: File,
    /// Device and inode of `file`: when `path` names another, it is reopened.
    id: (u64, u64),
    /// Whole lines, each ending in `\n`, not written yet.
    buf: Vec<u8>,
    /// The first fsync that failed. The kernel reports a failed writeback
    /// once and then drops the error (and possibly the pages): the next
    /// fsync succeeds without the lost lines. So after one failure nothing
    /// written to this sink counts as durable again in this process.
    sync_failed: Option<String>,
    /// Lines were written since the last fsync: a file dropped (a sink a
    /// reload replaced) fsyncs them, as the queue's settle would have
    /// (issue 12).
    unsynced: bool,
}

/// Opens `path` for appending, creating it and its directory, and ends a
/// torn last line: a process killed in the middle of a write (kill -9 stops
/// a write between pages) leaves one, and the lines appended now must not
/// continue it.
fn open_file(path: &Path) -> io::Result<(File, (u64, u64))> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    let len = meta.len();
    let mut last = [0u8];
    if meta.is_file()
        && len > 0
        && std::os::unix::fs::FileExt::read_at(&file, &mut last, len - 1)? == 1
        && last[0] != b'\n'
    {
        file.write_all(b"\n")?;
    }
    Ok((file, (meta.dev(), meta.ino())))
}

/// The lines of `bytes` (whole lines, each ending in `\n`), without their
/// newlines.
fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

impl NdjsonFile {
    /// Opens `path` for appending, creating it and its directory.
    pub fn open(path: &Path) -> io::Result<NdjsonFile> {
        let (file, id) = open_file(path)?;
        Ok(NdjsonFile {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file,
                id,
                buf: Vec::with_capacity(CAPACITY),
                sync_failed: None,
                unsynced: false,
            }),
            written: None,
        })
    }

    /// Counts the lines actually written to the file in `written`.
    pub fn counting(mut self, written: Counter) -> NdjsonFile {
        self.written = Some(written);
        self
    }

    fn count_written(&self, lines: &[u8]) {
        if let Some(c) = &self.written {
            c.inc_by(memchr::memchr_iter(b'\n', lines).count() as u64);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a partial buffer; keep writing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the file at `path` again (creating it), whether or not it is
    /// still the open one: lines buffered now go to the new file.
    pub fn reopen(&self) -> io::Result<()> {
        // Under the lock: opening ends a torn last line, which must not be
        // taken for a write of this file still in progress.
        let mut s = self.lock();
        let (file, id) = open_file(&self.path)?;
        if s.id != id {
            tracing::info!(path = %self.path.display(), "reopened: now writing to a new file at this path");
        }
        s.file = file;
        s.id = id;
        Ok(())
    }

    /// Appends one line (`line` without its newline). Buffered; may write
    /// lines buffered earlier (by any thread): the error hands back every
    /// line that could not be written, which may or may not include this one.
    pub fn write(&self, line: &[u8]) -> Result<(), SinkError> {
        let mut s = self.lock();
        // Lines buffered earlier are written first when this one would not
        // fit; a line never straddles two writes, so that a crash (kill -9)
        // leaves whole lines only.
        let earlier = if !s.buf.is_empty() && s.buf.len() + line.len() + 1 > CAPACITY {
            self.write_out(&mut s)
        } else {
            Ok(())
        };
        s.buf.extend_from_slice(line);
        s.buf.push(b'\n');
        earlier
    }

    /// Writes the buffered lines to the file; the error hands back those
    /// that could not be written.
    pub fn flush(&self) -> Result<(), SinkError> {
        self.write_out(&mut self.lock())
    }

    /// Fsyncs what was written. Lines still buffered belong to events not
    /// yet complete; their workers flush them. Fails for good once an fsync
    /// has failed (see `sync_failed`).
    pub fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        s.unsynced = false;
        let result = match s.file.sync_data() {
            // EINVAL: a device such as /dev/null, which has nothing to make
            // durable and must not hold back tail checkpoints.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
            r => {
                r.map_err(|e| io::Error::new(e.kind(), format!("cannot fsync {}: {e}", self.path.display())))
            }
        };
        match (&s.sync_failed, result) {
            (None, Err(e)) => {
                s.sync_failed = Some(e.to_string());
                Err(e)
            }
            (Some(first), Ok(())) => Err(io::Error::other(format!(
                "{first} earlier; lines written before it may be lost, so nothing written to {} counts as durable until a restart",
                self.path.display()
            ))),
            (_, r) => r,
        }
    }

    /// Reopens when `path` no longer names the open file (deleted, renamed
    /// away, replaced). When the path cannot be looked at (permissions),
    /// writing goes on where it was.
    fn follow_path(&self, s: &mut State) -> io::Result<()> {
        let why = match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == s.id => return Ok(()),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Ok(()),
            Ok(_) => "the file at this path was replaced",
            Err(_) => "the file was deleted or renamed away",
        };
        // Said once the outcome is known: the new path may be a directory.
        match open_file(&self.path) {
            Ok((file, id)) => {
                tracing::warn!(path = %self.path.display(), "{why}; writing to the new one");
                s.file = file;
                s.id = id;
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "{why}; cannot open a file at its path");
                Err(e)
            }
        }
    }

    /// Writes the buffered lines. On failure the file is cut back to its
    /// last whole line and the lines not written are returned.
    fn write_out(&self, s: &mut State) -> Result<(), SinkError> {
        if s.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut s.buf);
        let failed = match self.follow_path(s) {
            Err(e) => Some((e, 0)),
            Ok(()) => write_some(&mut s.file, &buf).err(),
        };
        s.unsynced = true;
        let Some((error, written)) = failed else {
            self.count_written(&buf);
            s.buf = buf;
            s.buf.clear();
            return Ok(());
        };
        let whole = memchr::memrchr(b'\n', &buf[..written]).map_or(0, |i| i + 1);
        self.count_written(&buf[..whole]);
        if whole < written {
            // The file now ends inside a line: cut that part off.
            let torn = (written - whole) as u64;
            let cut = s.file.metadata().and_then(|m| {
                if m.is_file() {
                    s.file.set_len(m.len().saturating_sub(torn))
                } else {
                    Ok(())
                }
            });
            if let Err(e) = cut {
                tracing::error!(path = %self.path.display(), error = %e, "cannot remove a partly written line from the end of the file");
            }
        }
        let unwritten = lines_of(&buf[whole..]);
        s.buf = buf;
        s.buf.clear();
        Err(SinkError {
            error: io::Error::new(
                error.kind(),
                format!("cannot write to {}: {error}", self.path.display()),
            ),
            unwritten,
        })
    }
}

/// Writes all of `buf`, or says how much was written before the error.
fn write_some(file: &mut File, buf: &[u8]) -> Result<(), (io::Error, usize)> {
    let mut written = 0;
    while written < buf.len() {
        match file.write(&buf[written..]) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), written)),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, written)),
        }
    }
    Ok(())
}

impl Drop for NdjsonFile {
    /// A sink dropped with lines buffered (a reload replaced it while a
    /// worker was between write and flush): write them; what cannot be
    /// written is carried whole in the log, the last place left. Then
    /// fsync what was written since the last fsync: the queue may release
    /// those events without seeing this file again (issue 12).
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            for line in &e.unwritten {
                tracing::error!(path = %self.path.display(), error = %e.error, line = %String::from_utf8_lossy(line), "line not written to the file; it is whole in this log line");
            }
        }
        if self.lock().unsynced {
            if let Err(e) = self.sync() {
                tracing::error!(path = %self.path.display(), error = %e, "cannot fsync a file sink being closed; its last lines survive a crash of the daemon, not a power loss");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_makes_lines_durable_and_accepts_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let f = NdjsonFile::open(&path).unwrap();
        f.write(b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"", "buffered until flushed");
        f.flush().unwrap();
        f.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        let null = NdjsonFile::open(Path::new("/dev/null")).unwrap();
        null.write(b"{}").unwrap();
        null.flush().unwrap();
        null.sync().unwrap();
    }

    /// Issue 18, item 4: a directory in place of the sink file is logged as
    /// what happened (the new file could not be opened), not as "writing to
    /// the new one"; the lines are handed back and none counted as written.
    #[test]
    fn a_directory_replacing_the_file_is_logged_truthfully() {
        #[derive(Clone, Default)]
        struct Log(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let written = Counter::default();
        let f = NdjsonFile::open(&path).unwrap().counting(written.clone());
        f.write(b"{}").unwrap();
        f.flush().unwrap();
        assert_eq!(written.get(), 1);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = tracing::subscriber::with_default(subscriber, || {
            f.write(b"{\"a\":1}").unwrap();
            f.flush().unwrap_err()
        });
        assert_eq!(e.unwritten, vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(written.get(), 1, "nothing more was written");
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("cannot open a file at its path"), "{text}");
        assert!(!text.contains("writing to the new one"), "{text}");
    }

    #[test]
    fn every_line_a_full_device_refuses_is_handed_back() {
        let full = NdjsonFile::open(Path::new("/dev/full")).unwrap();
        full.write(b"{\"a\":1}").unwrap();
        full.write(b"{\"b\":2}").unwrap();
        let e = full.flush().unwrap_err();
        assert_eq!(e.error.kind(), io::ErrorKind::StorageFull, "ENOSPC: {e}");
        assert!(e.to_string().contains("/dev/full"), "{e}");
        assert_eq!(e.unwritten, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        full.flush().unwrap();
        // Past the buffer's capacity, a write hands back the earlier lines
        // it could not write, and keeps its own.
        let big = vec![b'x'; CAPACITY - 4];
        full.write(&big).unwrap();
        let e = full.write(b"{\"c\":3}").unwrap_err();
        assert_eq!(e.unwritten, vec![big]);
        assert_eq!(full.flush().unwrap_err().unwritten, vec![b"{\"c\":3}".to_vec()]);
    }

    #[test]
    fn a_deleted_or_replaced_file_is_noticed_and_reopen_takes_the_path_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let f = NdjsonFile::open(&path).unwrap();
        f.write(b"1").unwrap();
        f.flush().unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write(b"2").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2\n", "deleted: a new file");
        let moved = dir.path().join("out.ndjson.1");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, b"other\n").unwrap();
        f.write(b"3").unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"other\n3\n",
            "replaced: the new file"
        );
        assert_eq!(std::fs::read(&moved).unwrap(), b"2\n");
        std::fs::rename(&path, &moved).unwrap();
        f.reopen().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"", "reopen creates the file");
    }
}
