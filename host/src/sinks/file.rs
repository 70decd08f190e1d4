//! Append-only NDJSON file, one JSON document per line. Used by the `file`
//! sink and by the dead-letter log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Sink;

pub struct NdjsonFile {
    path: PathBuf,
    /// Lines buffered by whichever worker wrote them, flushed by the next
    /// flush from any worker.
    out: Mutex<BufWriter<File>>,
}

impl NdjsonFile {
    /// Opens `path` for appending, creating it and its directory.
    pub fn open(path: &Path) -> io::Result<NdjsonFile> {
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
        // A process killed in the middle of a write (kill -9 stops a write
        // between pages) leaves a torn last line: end it, so that the
        // lines appended now do not continue it.
        let len = file.metadata()?.len();
        let mut last = [0u8];
        if len > 0 && std::os::unix::fs::FileExt::read_at(&file, &mut last, len - 1)? == 1 && last[0] != b'\n'
        {
            file.write_all(b"\n")?;
        }
        Ok(NdjsonFile {
            path: path.to_path_buf(),
            out: Mutex::new(BufWriter::with_capacity(64 << 10, file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        // A panic while holding the lock leaves at worst a partial buffer; keep writing.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink for NdjsonFile {
    fn write(&self, line: &[u8]) -> io::Result<()> {
        let mut out = self.lock();
        // A line never straddles two writes to the file, so that a crash
        // (kill -9) leaves whole lines only, and lines appended after a
        // restart do not continue a torn one.
        if out.capacity() - out.buffer().len() < line.len() + 1 {
            out.flush()?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")
    }

    fn flush(&self) -> io::Result<()> {
        self.lock().flush()
    }

    fn sync(&self) -> io::Result<()> {
        let mut out = self.lock();
        out.flush()?;
        match out.get_ref().sync_data() {
            // EINVAL: a device such as /dev/null, which has nothing to make
            // durable and must not hold back tail checkpoints.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
            r => r,
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
        f.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n", "sync flushes first");
        let null = NdjsonFile::open(Path::new("/dev/null")).unwrap();
        null.write(b"{}").unwrap();
        null.sync().unwrap();
    }
}
