//! The three candidate stores behind one interface, each used the way a FIFO
//! queue would use it: append a group of records durably (one sync for the
//! group), read them back in order, release consumed records in batches.
//!
//! Durability is the same everywhere: `append` returns only once the group
//! is on disk (fdatasync or the library's equivalent). Releases are not
//! synced by any store (a lost release is a redelivery, which an
//! at-least-once queue allows); each store syncs once when `close` is called.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A queue's storage: one writer appends, one reader consumes in order.
pub trait Store: Send {
    /// Appends `records` in order; returns once all of them are durable.
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()>;
    /// Reads every record in order, calling `each` on it, and releases
    /// them `release` at a time (the last group may be shorter). Returns
    /// how many records were read.
    fn consume(&mut self, release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64>;
    /// Syncs whatever is pending (releases) and closes.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Opens the store named `kind` in the empty folder `dir`.
pub fn open(kind: &str, dir: &Path) -> Result<Box<dyn Store>> {
    fs::create_dir_all(dir)?;
    Ok(match kind {
        "segment" => Box::new(SegmentLog::open(dir)?),
        "fjall" => Box::new(Fjall::open(dir)?),
        "redb" => Box::new(Redb::open(dir)?),
        "okaywal" => Box::new(OkayWal::open(dir)?),
        "none" => Box::new(NoStore::default()),
        other => bail!("unknown store {other:?}: segment, fjall, redb, okaywal or none"),
    })
}

/// The baseline: records kept in memory, nothing written. Measures the
/// harness's own cost (the memory queue's side of the comparison).
#[derive(Default)]
pub struct NoStore {
    records: std::collections::VecDeque<Vec<u8>>,
}

impl Store for NoStore {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        self.records.extend(records.iter().cloned());
        Ok(())
    }
    fn consume(&mut self, _release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let n = self.records.len() as u64;
        for r in self.records.drain(..) {
            each(&r);
        }
        Ok(n)
    }
    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Segment files of at most this many bytes.
const SEGMENT_BYTES: u64 = 64 << 20;

/// A plain segment log: append-only files `NNNNNNNNNN.seg` of records
/// `[len u32 LE][crc32 u32 LE][payload]`, one write and one fdatasync per
/// group, a new file (and a directory fsync) every 64 MiB. Consuming reads
/// each file sequentially, checks each CRC, records the released offset in
/// the segment's `.ack` file (8 bytes, overwritten in place, not synced) and
/// deletes both files once the segment is consumed.
pub struct SegmentLog {
    dir: PathBuf,
    /// Segments written so far, oldest first.
    segments: Vec<PathBuf>,
    /// The segment being appended to and its length.
    file: File,
    len: u64,
    /// Reused encode buffer: a group goes out in one write.
    buf: Vec<u8>,
}

impl SegmentLog {
    fn open(dir: &Path) -> Result<Self> {
        let (file, path) = Self::create_segment(dir, 0)?;
        Ok(Self {
            dir: dir.to_owned(),
            segments: vec![path],
            file,
            len: 0,
            buf: Vec::new(),
        })
    }

    fn create_segment(dir: &Path, n: usize) -> Result<(File, PathBuf)> {
        let path = dir.join(format!("{n:010}.seg"));
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        File::open(dir)?.sync_all().context("fsync the queue folder")?;
        Ok((file, path))
    }
}

impl Store for SegmentLog {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        if self.len >= SEGMENT_BYTES {
            let (file, path) = Self::create_segment(&self.dir, self.segments.len())?;
            self.file = file;
            self.segments.push(path);
            self.len = 0;
        }
        self.buf.clear();
        for r in records {
            self.buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            self.buf.extend_from_slice(r);
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        Ok(())
    }

    fn consume(&mut self, release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut n = 0u64;
        let mut record = Vec::new();
        for path in std::mem::take(&mut self.segments) {
            let ack_path = path.with_extension("ack");
            let ack = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&ack_path)?;
            let mut reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
            let (mut offset, mut unreleased) = (0u64, 0usize);
            let mut head = [0u8; 8];
            loop {
                match reader.read_exact(&mut head) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e.into()),
                }
                let len = u32::from_le_bytes(head[..4].try_into()?) as usize;
                let crc = u32::from_le_bytes(head[4..].try_into()?);
                record.resize(len, 0);
                reader.read_exact(&mut record)?;
                if crc32fast::hash(&record) != crc {
                    bail!("{}: bad checksum at offset {offset}", path.display());
                }
                each(&record);
                offset += 8 + len as u64;
                n += 1;
                unreleased += 1;
                if unreleased == release {
                    ack.write_all_at(&offset.to_le_bytes(), 0)?;
                    unreleased = 0;
                }
            }
            ack.write_all_at(&offset.to_le_bytes(), 0)?;
            drop(ack);
            fs::remove_file(&path)?;
            fs::remove_file(&ack_path)?;
        }
        Ok(n)
    }

    fn close(self: Box<Self>) -> Result<()> {
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// fjall 3 (LSM tree): one keyspace, key = sequence number (u64 big-endian,
/// so key order is append order). A group is one `WriteBatch` committed
/// with `PersistMode::SyncData` (its journal write and fdatasync); releases
/// are batches of removes without a sync.
pub struct Fjall {
    db: fjall::Database,
    queue: fjall::Keyspace,
    next: u64,
}

impl Fjall {
    fn open(dir: &Path) -> Result<Self> {
        let db = fjall::Database::builder(dir).open()?;
        let queue = db.keyspace("queue", fjall::KeyspaceCreateOptions::default)?;
        Ok(Self { db, queue, next: 0 })
    }
}

impl Store for Fjall {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::SyncData));
        for r in records {
            batch.insert(&self.queue, self.next.to_be_bytes(), r.as_slice());
            self.next += 1;
        }
        batch.commit()?;
        Ok(())
    }

    fn consume(&mut self, release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut n = 0u64;
        let mut keys = Vec::with_capacity(release);
        for guard in self.queue.iter() {
            let (key, value) = guard.into_inner()?;
            each(&value);
            keys.push(key);
            n += 1;
            if keys.len() == release {
                let mut batch = self.db.batch();
                for k in keys.drain(..) {
                    batch.remove(&self.queue, k);
                }
                batch.commit()?;
            }
        }
        let mut batch = self.db.batch();
        for k in keys.drain(..) {
            batch.remove(&self.queue, k);
        }
        batch.commit()?;
        Ok(n)
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }
}

const REDB_QUEUE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("queue");

/// redb 4 (copy-on-write B-tree): one table, key = sequence number. A group
/// is one write transaction with `Durability::Immediate` (redb's commit:
/// write the pages, fsync, flip the root, fsync). Consuming reads `release`
/// records in a read transaction, then removes them in a write transaction
/// with `Durability::None`.
pub struct Redb {
    db: redb::Database,
    next: u64,
}

impl Redb {
    fn open(dir: &Path) -> Result<Self> {
        let db = redb::Database::create(dir.join("queue.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(REDB_QUEUE)?;
        txn.commit()?;
        Ok(Self { db, next: 0 })
    }
}

impl Store for Redb {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(REDB_QUEUE)?;
            for r in records {
                table.insert(self.next, r.as_slice())?;
                self.next += 1;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn consume(&mut self, release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64> {
        use redb::ReadableDatabase;
        let mut n = 0u64;
        let mut from = 0u64;
        loop {
            let mut keys = Vec::with_capacity(release);
            {
                let txn = self.db.begin_read()?;
                let table = txn.open_table(REDB_QUEUE)?;
                for entry in table.range(from..)?.take(release) {
                    let (k, v) = entry?;
                    each(v.value());
                    keys.push(k.value());
                }
            }
            if keys.is_empty() {
                return Ok(n);
            }
            n += keys.len() as u64;
            from = keys[keys.len() - 1] + 1;
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            {
                let mut table = txn.open_table(REDB_QUEUE)?;
                for k in keys {
                    table.remove(k)?;
                }
            }
            txn.commit()?;
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.commit()?;
        Ok(())
    }
}

/// How far the consumer of an okaywal log has released, shared with its
/// checkpointer (okaywal recycles a file once `checkpoint_to` returns, so
/// for a queue that call is where released records may go).
#[derive(Debug, Default)]
pub struct Released {
    /// Every entry up to this id was consumed; `closing` ends any wait.
    state: std::sync::Mutex<(u64, bool)>,
    changed: std::sync::Condvar,
}

impl Released {
    /// Ends every wait of the checkpointer: the log is being shut down.
    pub fn set_closing(&self) {
        self.set(0, true);
    }

    fn set(&self, upto: u64, closing: bool) {
        let mut s = self.state.lock().expect("poisoned");
        *s = (s.0.max(upto), s.1 || closing);
        self.changed.notify_all();
    }
}

/// okaywal's checkpointer: a log file may be recycled once the consumer
/// released every entry in it.
#[derive(Debug)]
pub struct QueueCheckpointer(pub std::sync::Arc<Released>);

impl okaywal::LogManager for QueueCheckpointer {
    fn recover(&mut self, _entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        Ok(())
    }
    fn checkpoint_to(
        &mut self,
        last_checkpointed_id: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        let mut s = self.0.state.lock().expect("poisoned");
        while s.0 < last_checkpointed_id.0 && !s.1 {
            s = self.0.changed.wait(s).expect("poisoned");
        }
        Ok(())
    }
}

/// okaywal 0.3 (a write-ahead log; its README calls it early and its format
/// unstable): a group is one entry of one chunk per record, committed (its
/// fsync, shared by concurrent committers). Each record is read back by its
/// position (`read_at`: an open and a seek per record) with its CRC
/// checked; releasing tells the checkpointer how far it may recycle.
/// Library defaults otherwise (768 KiB files).
pub struct OkayWal {
    wal: okaywal::WriteAheadLog,
    released: std::sync::Arc<Released>,
    /// Entry id and position of every record not yet consumed.
    positions: std::collections::VecDeque<(u64, okaywal::LogPosition)>,
}

impl OkayWal {
    fn open(dir: &Path) -> Result<Self> {
        let released = std::sync::Arc::new(Released::default());
        let wal = okaywal::WriteAheadLog::recover(dir, QueueCheckpointer(released.clone()))?;
        Ok(Self {
            wal,
            released,
            positions: Default::default(),
        })
    }
}

impl Store for OkayWal {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        let mut entry = self.wal.begin_entry()?;
        let id = entry.id().0;
        for r in records {
            self.positions.push_back((id, entry.write_chunk(r)?.position));
        }
        entry.commit()?;
        Ok(())
    }

    fn consume(&mut self, release: usize, each: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut n = 0u64;
        let mut buf = Vec::new();
        while let Some((id, position)) = self.positions.pop_front() {
            let mut chunk = self.wal.read_at(position)?;
            buf.clear();
            chunk.read_to_end(&mut buf)?;
            if !chunk.crc_is_valid()? {
                bail!("okaywal: bad checksum in entry {id}");
            }
            drop(chunk);
            each(&buf);
            n += 1;
            if n.is_multiple_of(release as u64) {
                self.released.set(id - 1, false);
            }
        }
        Ok(n)
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.released.set(u64::MAX, true);
        self.wal.shutdown()?;
        Ok(())
    }
}
