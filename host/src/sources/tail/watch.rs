//! What wakes a tail source: filesystem events (notify) for low latency,
//! events handled, room in the queue, and stop. The periodic
//! poll in the source is the safety net for what notify misses (inotify
//! overflow, network filesystems, a directory created later).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use crossbeam_channel::{Receiver, Sender};
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher as _};

use super::identity::FileId;

/// One source's doorbell: a flag per reason and a channel to wait on.
/// Also the [`Wake`] of the futures the source polls (events handled,
/// queue permits), so one wait covers everything.
pub struct Signal {
    tx: Sender<()>,
    pub stop: AtomicBool,
    /// Files may have appeared, been renamed or deleted: look again.
    pub scan: AtomicBool,
}

impl Signal {
    pub fn new() -> (Arc<Signal>, Receiver<()>) {
        // One pending wake-up is enough: the source re-checks everything.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let signal = Arc::new(Signal {
            tx,
            stop: AtomicBool::new(false),
            scan: AtomicBool::new(true),
        });
        (signal, rx)
    }

    pub fn ring(&self) {
        let _ = self.tx.try_send(());
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.ring();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.ring();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

/// Watches the directory a pattern can match in; (re)establishes the watch
/// when the directory appears or is replaced.
pub struct DirWatcher {
    inner: Option<notify::RecommendedWatcher>,
    root: PathBuf,
    recursive: bool,
    /// The directory being watched, to notice it being replaced.
    watching: Option<FileId>,
}

impl DirWatcher {
    pub fn new(signal: Arc<Signal>, root: PathBuf, recursive: bool) -> DirWatcher {
        let handler = move |res: notify::Result<notify::Event>| {
            let scan = match &res {
                Ok(event) => {
                    event.need_rescan()
                        || matches!(
                            event.kind,
                            EventKind::Create(_)
                                | EventKind::Remove(_)
                                | EventKind::Modify(ModifyKind::Name(_))
                                | EventKind::Any
                                | EventKind::Other
                        )
                }
                // Typically an overflowed event queue: look at everything.
                Err(_) => true,
            };
            if scan {
                signal.scan.store(true, Ordering::Release);
            }
            signal.ring();
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "cannot watch for file changes; polling only");
                None
            }
        };
        let mut w = DirWatcher {
            inner,
            root,
            recursive,
            watching: None,
        };
        w.ensure();
        w
    }

    /// Watches the directory if it exists and is not watched yet (or was
    /// replaced since). Cheap when nothing changed: one stat.
    pub fn ensure(&mut self) {
        let Some(inner) = self.inner.as_mut() else { return };
        let now = std::fs::metadata(&self.root).ok().map(|m| FileId::of(&m));
        if now.is_some() && now == self.watching {
            return;
        }
        if self.watching.take().is_some() {
            let _ = inner.unwatch(&self.root);
        }
        if now.is_none() {
            return;
        }
        let mode = if self.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match inner.watch(&self.root, mode) {
            Ok(()) => {
                tracing::debug!(dir = %self.root.display(), recursive = self.recursive, "watching");
                self.watching = now;
            }
            Err(e) => {
                tracing::warn!(dir = %self.root.display(), error = %e, "cannot watch; polling only until it works");
            }
        }
    }
}
