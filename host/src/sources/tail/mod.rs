//! The tail source: log files followed like `tail -F`, with checkpoints so
//! that every line is handled once through rotation, truncation, restart
//! and `kill -9` (at least once there, duplicates bounded by what was in
//! flight).
//!
//! - [`pattern`]: the configured file or glob, expanded by walking only
//!   what it can match; names that look like rotations.
//! - [`identity`]: device + inode (+ birth time) and a fingerprint of the
//!   first bytes; the mark of the line at an offset.
//! - [`lines`]: complete lines out of bytes as they arrive; CRLF; over-long
//!   lines skipped without holding them.
//! - [`parse`]: a line to an event, per `format`.
//! - [`checkpoint`]: per-source state file, replaced atomically and durably.
//! - [`watch`]: notify watcher and the source's wake-up doorbell.
//! - `source`: the [`source::Tail`] source, made by [`open`]; its
//!   `discover` part finds files (start-up, new files, renames, rotations
//!   that came and went, copies), its `read` part reads lines, submits them
//!   with backpressure, collects replies and handles truncation; checkpoints
//!   advance as events complete.
//! - `saver`: writes checkpoints on a thread of their own.

pub mod checkpoint;
pub mod identity;
pub mod lines;
pub mod parse;
pub mod pattern;
mod saver;
mod source;
pub mod watch;

pub use source::open;
