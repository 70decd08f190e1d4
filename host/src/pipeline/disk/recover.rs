//! Opening the disk queue: what the last run left, made consistent.
//!
//! Every segment is scanned in order of acceptance (segment ids are the
//! seq of their first record, records within one are in seq order):
//! - a torn last record (power loss or a crash mid-write: bytes after the
//!   last valid record of the newest segment) is ignored, logged, counted
//!   and truncated away;
//! - damage elsewhere (bytes with no valid record, with valid records
//!   after them or in an older segment) goes to dead letters as
//!   `corrupt_record` with its bytes in base64, its segment and offset;
//!   once the letters are fsynced, the damage is marked in the ack file so
//!   it is not dead-lettered again; reading goes on past it;
//! - acked records are skipped; unacked ones are delivered again
//!   (`queue_redelivered_total`);
//! - seqs whose handlers were running when the last run died (`inflight`)
//!   count one more delivery.
//!
//! Writing always starts in a fresh segment, so only the newest segment
//! can end torn.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::acks::DAMAGE;
use super::inflight::{self, Inflight};
use super::log::Active;
use super::reader::Skip;
use super::{ack_path, record, seg_path, Pos, Seg, Segs};
use crate::dead_letter::DeadLetters;
use crate::telemetry::Stats;

/// Why the queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{what} ({path})")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path} is locked: another switchyard uses this state folder's disk queue")]
    Locked { path: PathBuf },
}

fn at(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Io { path, what, source }
}

/// The queue's state after recovery.
pub(super) struct Recovered {
    pub(super) segs: Segs,
    pub(super) active: Active,
    /// Bytes of segment files.
    pub(super) bytes: u64,
    /// Records not acked: delivered again.
    pub(super) unacked: u64,
    pub(super) next_seq: u64,
    /// Where the reader starts (the oldest segment with unacked records).
    pub(super) spill: Option<Pos>,
    pub(super) committed: Pos,
    pub(super) skip: Skip,
    pub(super) deliveries: HashMap<u64, u32>,
    pub(super) inflight: Inflight,
    /// Held (locked) while the queue is open.
    pub(super) lock: File,
}

/// Recovers the queue in `dir` (see the module docs).
pub(super) fn recover(
    dir: &Path,
    workers: usize,
    dead_letters: &DeadLetters,
    stats: &Stats,
) -> Result<Recovered, OpenError> {
    std::fs::create_dir_all(dir).map_err(at(dir, "cannot create the disk queue folder"))?;
    let lock = lock(dir)?;
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(at(dir, "cannot list the disk queue folder"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    ids.sort_unstable();
    let running = inflight::read_running(dir).map_err(at(dir, "cannot read the in-flight slots"))?;
    let old_counts = inflight::read_deliveries(dir).map_err(at(dir, "cannot read the delivery counts"))?;
    // Seqs whose presence decides the delivery counts.
    let mut wanted: HashSet<u64> = running.iter().copied().collect();
    wanted.extend(old_counts.keys());
    let mut present = HashSet::new();
    let mut skip = Skip::default();
    let mut map = BTreeMap::new();
    let (mut bytes, mut unacked, mut next_seq) = (0, 0, 0);
    let mut lettered: Vec<(u64, u64)> = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let path = seg_path(dir, id);
        let mut data = std::fs::read(&path).map_err(at(&path, "cannot read a disk queue segment"))?;
        let (acked, damage_acked) =
            read_acks(&ack_path(dir, id)).map_err(at(&path, "cannot read an ack file"))?;
        let scan = record::scan(&data);
        let mut damaged = scan.damaged.clone();
        if scan.valid_end < data.len() {
            if k + 1 == ids.len() {
                torn(&path, &scan, data.len(), stats)?;
                data.truncate(scan.valid_end);
            } else {
                damaged.push(scan.valid_end..data.len());
            }
        }
        for range in damaged {
            let offset = range.start as u64;
            skip.damaged.insert((id, offset));
            if damage_acked.contains(&offset) {
                continue;
            }
            Stats::add(&stats.queue_corrupt_records, 1);
            tracing::error!(segment = %path.display(), offset, len = range.len(), "a damaged record in the disk queue; its bytes go to dead letters as corrupt_record, reading goes on");
            if corrupt_letter(
                dead_letters,
                dir,
                (id, offset),
                &data[range],
                "a damaged disk queue record (checksum or header)",
            )
            .is_ok()
            {
                lettered.push((id, offset));
            }
        }
        let mut seg = Seg {
            len: data.len() as u64,
            unacked: 0,
            first_ms: None,
        };
        for (seq, ms, _) in &scan.records {
            next_seq = next_seq.max(seq + 1);
            if acked.contains(seq) {
                skip.acked.insert(*seq);
                continue;
            }
            seg.unacked += 1;
            seg.first_ms.get_or_insert(*ms);
            if wanted.contains(seq) {
                present.insert(*seq);
            }
        }
        bytes += seg.len;
        unacked += seg.unacked;
        map.insert(id, seg);
    }
    mark_lettered(dir, dead_letters, &lettered);
    let deliveries = inflight::write_deliveries(dir, old_counts, &running, |s| present.contains(&s))
        .map_err(at(dir, "cannot write the delivery counts"))?;
    let inflight = Inflight::map(dir, workers).map_err(at(dir, "cannot map the in-flight slots"))?;
    let active = fresh_segment(dir, next_seq, &mut map)?;
    let spill = map.iter().find(|(_, s)| s.unacked > 0).map(|(id, _)| (*id, 0));
    if unacked > 0 {
        Stats::add(&stats.queue_redelivered, unacked);
        tracing::info!(events = unacked, segments = map.len(), "the disk queue holds events accepted before the restart; delivering them again in order of acceptance");
    }
    Ok(Recovered {
        committed: (active.id, 0),
        segs: Segs {
            map,
            active: active.id,
        },
        active,
        bytes,
        unacked,
        next_seq,
        spill,
        skip,
        deliveries,
        inflight,
        lock,
    })
}

/// Locks the folder for this daemon (the lock goes with the process).
fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(at(&path, "cannot open the disk queue's lock file"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(at(&path, "cannot lock the disk queue")(e)),
    }
}

/// Truncates the torn tail of the newest segment.
fn torn(path: &Path, scan: &record::Scan, len: usize, stats: &Stats) -> Result<(), OpenError> {
    Stats::add(&stats.queue_torn_records, 1);
    tracing::warn!(segment = %path.display(), offset = scan.valid_end, bytes = len - scan.valid_end, "the last record of the disk queue is incomplete (a write cut short by a crash or power loss, before its producer was answered; or the file was truncated); ignoring it");
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(at(path, "cannot open a torn segment"))?;
    f.set_len(scan.valid_end as u64)
        .map_err(at(path, "cannot truncate a torn segment"))?;
    f.sync_all().map_err(at(path, "cannot fsync a truncated segment"))
}

/// Once the letters of damage are durable, marks the damage in the ack
/// files so that it is not dead-lettered again.
fn mark_lettered(dir: &Path, dead_letters: &DeadLetters, lettered: &[(u64, u64)]) {
    if lettered.is_empty() {
        return;
    }
    if let Err(e) = dead_letters.flush().and_then(|()| dead_letters.sync()) {
        tracing::error!(error = %e, "cannot fsync the dead letters of damaged disk queue records; they will be written again at the next start");
        return;
    }
    for (id, offset) in lettered {
        let path = ack_path(dir, *id);
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, &(DAMAGE | offset).to_le_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot mark dead-lettered damage in an ack file; it will be dead-lettered again at the next start");
        }
    }
}

/// The acked seqs and dead-lettered damage offsets of an ack file.
fn read_acks(path: &Path) -> io::Result<(HashSet<u64>, HashSet<u64>)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let (mut acked, mut damage) = (HashSet::new(), HashSet::new());
    for c in bytes.chunks_exact(8) {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if v & DAMAGE != 0 {
            damage.insert(v & !DAMAGE);
        } else {
            acked.insert(v);
        }
    }
    Ok((acked, damage))
}

/// The segment new records go to: named by the next seq (an empty file of
/// that name, left by a run that wrote nothing to it, is reused).
fn fresh_segment(dir: &Path, next_seq: u64, map: &mut BTreeMap<u64, Seg>) -> Result<Active, OpenError> {
    let path = seg_path(dir, next_seq);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(at(&path, "cannot create a disk queue segment"))?;
    let len = file
        .metadata()
        .map_err(at(&path, "cannot read a disk queue segment"))?
        .len();
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir, "cannot fsync the disk queue folder"))?;
    map.entry(next_seq).or_insert(Seg {
        len,
        unacked: 0,
        first_ms: None,
    });
    Ok(Active {
        id: next_seq,
        file,
        len,
    })
}

/// The `corrupt_record` letter of damaged bytes at `at` in segment files.
pub(super) fn corrupt_letter(
    dead_letters: &DeadLetters,
    dir: &Path,
    at: Pos,
    bytes: &[u8],
    message: &str,
) -> io::Result<()> {
    let segment = seg_path(dir, at.0);
    dead_letters.write_corrupt_record(&segment.to_string_lossy(), at.1, bytes, message)
}
/// With `[queue] type = "memory"`: says so, loudly, when an earlier run
/// of the disk queue left accepted events in `dir`: the memory queue does
/// not read them, and they wait there until a start with `type = "disk"`.
pub fn warn_if_left(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let (mut segments, mut bytes) = (0u64, 0u64);
    for e in entries.flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        if e.path().extension().is_some_and(|x| x == "seg") && len > 0 {
            segments += 1;
            bytes += len;
        }
    }
    if segments > 0 {
        tracing::error!(dir = %dir.display(), segments, bytes, "an earlier run of the disk queue left events it accepted here; the memory queue does not handle them: start once with [queue] type = \"disk\" to handle them");
    }
}
