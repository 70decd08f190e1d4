//! `[queue]`: which queue holds accepted events (issue 12): the disk queue
//! (the default: an event is on disk before its producer hears
//! "accepted") or the memory queue (lost on a crash), and the disk queue's
//! bounds and sync mode. Its folder is fixed: `<state.dir>/queue`.
//!
//! Keys that only the disk queue reads are refused with `type = "memory"`,
//! and `sync_interval` is refused with `sync = "batch"`: a key that would
//! be silently ignored is an error, like an unknown key.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::units::RawSize;
use super::validate::Validator;

/// `[queue]` settings. Applied when the daemon starts (see
/// [`super::restart_only_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueConfig {
    /// `type`: where accepted events wait for the workers.
    #[serde(rename = "type")]
    pub kind: QueueType,
    /// Bytes of segment files the disk queue keeps at most; a batch that
    /// would pass it is refused (HTTP 503) or waits (tail).
    pub max_bytes: u64,
    /// When the disk queue fsyncs what it accepted.
    pub sync: SyncMode,
    /// Most times an event may be delivered to handlers that the daemon
    /// died running, before it is dead-lettered as `poison`.
    pub max_deliveries: u32,
}

/// `[queue] type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Segment files under `<state.dir>/queue`: accepted survives `kill -9`.
    Disk,
    /// An in-process channel: what it holds is lost if the process dies.
    Memory,
}

/// `[queue] sync` (with `sync_interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync before a submit is answered; concurrent submits share one
    /// fsync. Nothing answered is lost, even on a power loss.
    Batch,
    /// fsync every so often: submits are answered once written (a crash of
    /// the process loses nothing; a power loss at most this interval).
    Interval(Duration),
}

/// `[queue] max_bytes` when not set.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;
/// `[queue] max_deliveries` when not set.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// `[queue] sync_interval` when not set (with `sync = "interval"`).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The smallest `max_bytes`: room for a few segments of the smallest size.
const MIN_MAX_BYTES: u64 = 64 << 10;
/// The largest `max_bytes`: 1 TiB.
const MAX_MAX_BYTES: u64 = 1 << 40;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            kind: QueueType::Disk,
            max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            sync: SyncMode::Batch,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub max_bytes: Option<Spanned<RawSize>>,
    pub sync: Option<Spanned<String>>,
    pub sync_interval: Option<Spanned<String>>,
    pub max_deliveries: Option<Spanned<i64>>,
}

impl Validator<'_> {
    pub fn queue(&mut self, raw: &RawQueue) -> QueueConfig {
        let d = QueueConfig::default();
        let kind = match &raw.kind {
            None => d.kind,
            Some(s) => match s.get_ref().as_str() {
                "disk" => QueueType::Disk,
                "memory" => QueueType::Memory,
                other => {
                    self.error(
                        Some(s.span()),
                        format!("queue.type: unknown queue type {other:?} (types: disk, memory)"),
                    );
                    d.kind
                }
            },
        };
        if kind == QueueType::Memory {
            let disk_only = [
                ("max_bytes", raw.max_bytes.as_ref().map(Spanned::span)),
                ("sync", raw.sync.as_ref().map(Spanned::span)),
                ("sync_interval", raw.sync_interval.as_ref().map(Spanned::span)),
                ("max_deliveries", raw.max_deliveries.as_ref().map(Spanned::span)),
            ];
            for (key, span) in disk_only {
                if let Some(span) = span {
                    self.error(
                        Some(span),
                        format!(
                            "queue.{key}: only the disk queue has this setting, and queue.type is \"memory\""
                        ),
                    );
                }
            }
        }
        let max_bytes = self.size(
            &raw.max_bytes,
            "queue.max_bytes",
            MIN_MAX_BYTES..MAX_MAX_BYTES + 1,
            d.max_bytes,
        );
        let interval = self.duration(&raw.sync_interval, "queue.sync_interval", DEFAULT_SYNC_INTERVAL);
        let sync = match &raw.sync {
            None => Some(SyncMode::Batch),
            Some(s) => match s.get_ref().as_str() {
                "batch" => Some(SyncMode::Batch),
                "interval" => Some(SyncMode::Interval(interval)),
                other => {
                    self.error(
                        Some(s.span()),
                        format!("queue.sync: unknown sync mode {other:?} (modes: batch, interval)"),
                    );
                    None
                }
            },
        };
        if let (Some(SyncMode::Batch), Some(s)) = (sync, &raw.sync_interval) {
            if kind == QueueType::Disk {
                self.error(
                    Some(s.span()),
                    "queue.sync_interval: only used with sync = \"interval\" (sync = \"batch\" fsyncs before each answer)"
                        .to_string(),
                );
            }
        }
        let max_deliveries = self.int(
            &raw.max_deliveries,
            "queue.max_deliveries",
            1..1001,
            d.max_deliveries.into(),
        ) as u32;
        QueueConfig {
            kind,
            max_bytes,
            sync: sync.unwrap_or(d.sync),
            max_deliveries,
        }
    }
}
