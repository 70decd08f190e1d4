//! Which file is which. Device + inode (+ birth time where the filesystem
//! records one) say "the same file object"; a fingerprint of the first bytes
//! says "the same content". Together they catch a reused inode (same number,
//! other content or birth time: a new file, read from 0), a file truncated and
//! rewritten in place, and a copy made by `copytruncate` (other inode, same
//! content). Two live files with identical headers are never confused: their
//! inodes differ, and the inode decides first.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::UNIX_EPOCH;

/// Bytes at the start of a file that its fingerprint covers.
pub const FINGERPRINT_LEN: usize = 1024;

/// A file object on one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// Birth time in nanoseconds since the epoch, where the filesystem and
    /// kernel report one (statx on ext4, xfs, btrfs, tmpfs).
    pub btime: Option<u64>,
}

impl FileId {
    pub fn of(meta: &Metadata) -> FileId {
        let btime = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            btime,
        }
    }

    /// Whether both name the same file object. Birth times are compared only
    /// when both are known: with them, an inode freed and reused even within
    /// the same second is told apart.
    pub fn same_file(&self, other: &FileId) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && match (self.btime, other.btime) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// A hash of a file's first `len` bytes (up to [`FINGERPRINT_LEN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(head: &[u8]) -> Fingerprint {
        Fingerprint {
            len: head.len() as u64,
            hash: fnv1a(head),
        }
    }

    /// Whether `head`, the first bytes of some file, starts with the content
    /// this fingerprint was taken of. An empty fingerprint matches anything.
    pub fn is_prefix_of(&self, head: &[u8]) -> bool {
        let len = self.len as usize;
        head.len() >= len && fnv1a(&head[..len]) == self.hash
    }

    /// The hash as 16 hex digits, the form the checkpoint stores.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// Reads the first bytes of a file (at most [`FINGERPRINT_LEN`], at most `size`).
pub fn read_head(file: &File, size: u64) -> io::Result<Vec<u8>> {
    let want = (FINGERPRINT_LEN as u64).min(size) as usize;
    let mut head = vec![0; want];
    let got = read_full_at(file, &mut head, 0)?;
    head.truncate(got);
    Ok(head)
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns
/// the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// 64-bit FNV-1a: tiny and stable across releases and platforms, which
/// checkpoints that outlive the binary need (std's hasher promises neither).
/// Nothing here defends against an adversary; the inode decides first.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continues an FNV-1a hash over more bytes.
pub fn fnv1a_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The hash of one line and its length, the check that a copy really holds
/// what was read up to an offset (the line that ends there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMark {
    /// Bytes of the line, terminator included.
    pub len: u64,
    pub hash: u64,
}

impl LineMark {
    /// The mark of a line given without its `\n` (a `\r` before it included).
    pub fn of_line(content: &[u8]) -> LineMark {
        LineMark {
            len: content.len() as u64 + 1,
            hash: fnv1a_extend(fnv1a(content), b"\n"),
        }
    }

    /// Whether `file` holds this line right before `end`.
    pub fn found_before(&self, file: &File, end: u64) -> io::Result<bool> {
        if self.len > end || self.len > 1 << 20 {
            return Ok(false);
        }
        let mut buf = vec![0; self.len as usize];
        let got = read_full_at(file, &mut buf, end - self.len)?;
        Ok(got == buf.len() && fnv1a(&buf) == self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fnv_is_the_published_function() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fingerprint_prefixes() {
        let fp = Fingerprint::of(b"header\nline 1\n");
        assert!(fp.is_prefix_of(b"header\nline 1\n"));
        assert!(fp.is_prefix_of(b"header\nline 1\nline 2\n"), "a file that grew");
        assert!(!fp.is_prefix_of(b"header\n"), "a file that shrank");
        assert!(!fp.is_prefix_of(b"header\nline X\n"), "rewritten content");
        assert!(Fingerprint::of(b"").is_prefix_of(b"anything"));
    }

    #[test]
    fn birth_time_tells_a_reused_inode_apart() {
        let a = FileId {
            dev: 1,
            ino: 7,
            btime: Some(100),
        };
        assert!(a.same_file(&FileId {
            dev: 1,
            ino: 7,
            btime: Some(100)
        }));
        assert!(!a.same_file(&FileId {
            dev: 1,
            ino: 7,
            btime: Some(101)
        }));
        assert!(!a.same_file(&FileId {
            dev: 2,
            ino: 7,
            btime: Some(100)
        }));
        assert!(!a.same_file(&FileId {
            dev: 1,
            ino: 8,
            btime: Some(100)
        }));
        assert!(
            a.same_file(&FileId {
                dev: 1,
                ino: 7,
                btime: None
            }),
            "unknown birth time"
        );
    }

    #[test]
    fn head_and_line_marks_on_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"one\ntwo\r\nthree\n").unwrap();
        let f = File::open(&path).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(read_head(&f, meta.len()).unwrap(), b"one\ntwo\r\nthree\n");
        assert_eq!(read_head(&f, 3).unwrap(), b"one");
        let id = FileId::of(&meta);
        assert!(id.same_file(&FileId::of(&std::fs::metadata(&path).unwrap())));
        let mark = LineMark::of_line(b"two\r");
        assert!(mark.found_before(&f, 9).unwrap());
        assert!(!mark.found_before(&f, 8).unwrap());
        assert!(!mark.found_before(&f, 3).unwrap());
        assert!(!LineMark::of_line(b"three").found_before(&f, 9).unwrap());
        assert!(LineMark::of_line(b"three").found_before(&f, 15).unwrap());
    }
}
