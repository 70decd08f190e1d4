//! Poison accounting (`[queue] max_deliveries`): which events had handlers
//! running when the daemon died, and how often that happened to each.
//!
//! Each worker owns one 8-byte slot of the file `inflight`, mapped shared
//! into memory (memmap2): starting an event's handlers stores its seq + 1
//! there, finishing them stores 0. A store into a shared mapping is in the
//! page cache at once, so it survives `kill -9` without a syscall per
//! event (a power loss may lose it: the event is then redelivered without
//! being counted, which only delays its dead letter).
//!
//! At open, every seq found in a slot had its handlers running at the
//! crash: its count in the file `deliveries` (seq u64, count u32 records,
//! rewritten whole and fsynced) goes up by one; an event whose count
//! reached `max_deliveries` is dead-lettered as `poison` when it is read.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

/// The workers' slots, mapped.
pub struct Inflight {
    map: MmapMut,
    slots: usize,
}

impl Inflight {
    /// Maps `slots` cleared slots (after [`read_running`] and
    /// [`write_deliveries`], so a crash in between loses no count).
    pub fn map(dir: &Path, slots: usize) -> io::Result<Inflight> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("inflight"))?;
        let slots = slots.max(1);
        file.set_len(0)?;
        file.set_len((slots * 8) as u64)?;
        file.sync_all()?;
        // SAFETY: the file is this queue's own (one daemon per state
        // folder); nothing else truncates it while it is mapped.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Inflight { map, slots })
    }

    fn slot(&self, worker: usize) -> &AtomicU64 {
        let i = worker % self.slots;
        let ptr = self.map.as_ptr().wrapping_add(i * 8) as *mut u64;
        // SAFETY: the mapping is page aligned, so every slot is 8-byte
        // aligned and inside it; it lives as long as `self`, and slots are
        // only touched through atomics.
        unsafe { AtomicU64::from_ptr(ptr) }
    }

    /// Worker `worker` runs the handlers of `seq`.
    pub fn running(&self, worker: usize, seq: u64) {
        self.slot(worker).store(seq + 1, Ordering::Relaxed);
    }

    /// Worker `worker` runs no handlers.
    pub fn idle(&self, worker: usize) {
        self.slot(worker).store(0, Ordering::Relaxed);
    }
}

/// The seqs whose handlers were running when the last run ended (its
/// slots).
pub fn read_running(dir: &Path) -> io::Result<Vec<u64>> {
    let old = match std::fs::read(dir.join("inflight")) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(old
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .filter(|&v| v != 0)
        .map(|v| v - 1)
        .collect())
}

/// The delivery counts the last run left (file `deliveries`).
pub fn read_deliveries(dir: &Path) -> io::Result<HashMap<u64, u32>> {
    let old = match std::fs::read(dir.join("deliveries")) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(old
        .chunks_exact(12)
        .map(|c| {
            let seq = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            (seq, u32::from_le_bytes(c[8..].try_into().expect("4 bytes")))
        })
        .collect())
}

/// Adds one to the count of each seq in `running` that is still queued
/// (`present`), keeps only queued seqs, and writes the counts back
/// (fsynced, by rename) when they changed. Returns them.
pub fn write_deliveries(
    dir: &Path,
    mut counts: HashMap<u64, u32>,
    running: &[u64],
    present: impl Fn(u64) -> bool,
) -> io::Result<HashMap<u64, u32>> {
    let before = counts.len();
    counts.retain(|seq, _| present(*seq));
    let mut changed = counts.len() != before;
    for &seq in running {
        if present(seq) {
            *counts.entry(seq).or_insert(0) += 1;
            changed = true;
        }
    }
    if changed {
        let mut bytes = Vec::with_capacity(counts.len() * 12);
        for (seq, n) in &counts {
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        let tmp = dir.join("deliveries.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("deliveries"))?;
        File::open(dir)?.sync_all()?;
    }
    Ok(counts)
}
