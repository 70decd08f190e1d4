//! The record format of the segment files, and how a segment is read back.
//!
//! A record is a 28-byte header then the event's JSON:
//! `magic u32 | len u32 | crc u32 | seq u64 | accepted_ms u64` (little
//! endian), where `len` is the JSON's length and `crc` the CRC-32
//! (crc32fast) of the JSON followed by the seq, accept time and length
//! bytes. A record is valid only if its magic, length and CRC all agree;
//! the magic lets a reader find the next record after a damaged one.

use std::ops::Range;

/// Bytes before a record's JSON.
pub const HEADER: usize = 28;
/// The first bytes of every record ("SYQ1").
const MAGIC: u32 = u32::from_le_bytes(*b"SYQ1");

/// The length of the record whose header starts `buf` (at least 8 bytes).
pub fn claimed_len(buf: &[u8]) -> usize {
    HEADER + u32_at(buf, 4) as usize
}

/// One valid record found in a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub seq: u64,
    pub accepted_ms: u64,
    /// The event's JSON.
    pub payload: &'a [u8],
}

/// What is at the start of a buffer of segment bytes.
#[derive(Debug, PartialEq)]
pub enum Parsed<'a> {
    /// A valid record of this many bytes in all.
    Record(Record<'a>, usize),
    /// The buffer ends inside what may be a record: read more (or, at the
    /// end of the file, a torn last record).
    Incomplete,
    /// No valid record starts here; the next one may start this many bytes
    /// on (or the buffer holds none: the damage runs to its end).
    Damaged(usize),
}

/// Appends a record's header placeholder; [`seal`] fills it in once its
/// seq is known. Returns the header's offset in `buf`.
pub fn begin(buf: &mut Vec<u8>) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    at
}

/// Fills in the header at `at` for the JSON that follows it up to the end
/// of the record (`end`).
pub fn seal(buf: &mut [u8], at: usize, end: usize, seq: u64, accepted_ms: u64) {
    let len = (end - at - HEADER) as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[at + HEADER..end]);
    h.update(&seq.to_le_bytes());
    h.update(&accepted_ms.to_le_bytes());
    h.update(&len.to_le_bytes());
    let header = &mut buf[at..at + HEADER];
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..12].copy_from_slice(&h.finalize().to_le_bytes());
    header[12..20].copy_from_slice(&seq.to_le_bytes());
    header[20..28].copy_from_slice(&accepted_ms.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the record at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < 4 {
        return if MAGIC.to_le_bytes().starts_with(buf) {
            Parsed::Incomplete
        } else {
            Parsed::Damaged(resync(buf))
        };
    }
    if u32_at(buf, 0) != MAGIC {
        return Parsed::Damaged(resync(buf));
    }
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    // A damaged length is caught by the CRC, or, when it runs past the
    // data, by the reader (see `Parsed::Incomplete`).
    let len = u32_at(buf, 4) as usize;
    if buf.len() < HEADER + len {
        return Parsed::Incomplete;
    }
    let (seq, accepted_ms) = (u64_at(buf, 12), u64_at(buf, 20));
    let payload = &buf[HEADER..HEADER + len];
    let mut h = crc32fast::Hasher::new();
    h.update(payload);
    h.update(&seq.to_le_bytes());
    h.update(&accepted_ms.to_le_bytes());
    h.update(&(len as u32).to_le_bytes());
    if h.finalize() != u32_at(buf, 8) {
        return Parsed::Damaged(resync(buf));
    }
    Parsed::Record(
        Record {
            seq,
            accepted_ms,
            payload,
        },
        HEADER + len,
    )
}

/// Where the next magic after the first byte of `buf` starts (the length
/// of `buf` if none does).
pub fn resync(buf: &[u8]) -> usize {
    let magic = MAGIC.to_le_bytes();
    memchr::memmem::find(buf.get(1..).unwrap_or_default(), &magic).map_or(buf.len(), |i| i + 1)
}

/// What scanning a whole segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Each valid record: its seq, accept time and byte range.
    pub records: Vec<(u64, u64, Range<usize>)>,
    /// Byte ranges with no valid record in them, before the last valid
    /// record (damage in the middle).
    pub damaged: Vec<Range<usize>>,
    /// Where the valid data ends: bytes after it (a torn last record, or
    /// damage with no valid record after it) are not records.
    pub valid_end: usize,
}

/// Finds every valid record in a segment's bytes, in order. Damage is
/// skipped by looking for the next magic whose record is valid.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    let mut damage_from: Option<usize> = None;
    while at < bytes.len() {
        match parse(&bytes[at..]) {
            Parsed::Record(r, n) => {
                if let Some(from) = damage_from.take() {
                    scan.damaged.push(from..at);
                }
                scan.records.push((r.seq, r.accepted_ms, at..at + n));
                at += n;
                scan.valid_end = at;
            }
            // A record cut short: nothing valid follows it in this buffer,
            // unless a magic inside it starts one.
            Parsed::Incomplete => {
                damage_from.get_or_insert(at);
                at += resync(&bytes[at..]);
            }
            Parsed::Damaged(skip) => {
                damage_from.get_or_insert(at);
                at += skip;
            }
        }
    }
    scan
}
