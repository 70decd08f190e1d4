//! Notices changes to the plugins folder and the config file and asks for a
//! reload. It only notices: the loader does the work (see `reload`). It
//! stops on the daemon's shutdown signal.
//!
//! A plugin file counts as completely written when it is closed after
//! writing or renamed into place; plain writes are ignored until then, so a
//! large file copied in small writes is not loaded half-way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher as _};

use super::reload::{ReloadRequest, ReloadSender};
use crate::shutdown::Shutdown;

/// Quiet time after the last change before reloading: a burst of changes
/// (an editor's save, a deploy of several plugins) becomes one reload.
const DEBOUNCE: Duration = Duration::from_millis(30);
/// A burst longer than this reloads anyway.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// What the debounce thread receives.
enum Msg {
    Fs(notify::Result<notify::Event>),
    /// Shutdown began: stop watching.
    Stop,
}

struct Paths {
    plugins_dir: PathBuf,
    config_file: PathBuf,
}

/// What one filesystem event means for reloading.
enum Change {
    Irrelevant,
    /// Something changed; reload.
    Changed,
    /// This plugin file is complete (closed after writing, or renamed in).
    Settled(PathBuf),
}

impl Paths {
    fn is_plugin(&self, p: &Path) -> bool {
        p.parent() == Some(self.plugins_dir.as_path())
            && matches!(p.extension().and_then(|e| e.to_str()), Some("wasm" | "wat"))
    }

    fn is_config(&self, p: &Path) -> bool {
        p == self.config_file
    }

    fn classify(&self, event: &notify::Event) -> Vec<Change> {
        event
            .paths
            .iter()
            .map(|p| {
                if self.is_config(p) {
                    return match event.kind {
                        EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Create(_)
                        | EventKind::Remove(_)
                        | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Data(_) | ModifyKind::Any) => {
                            Change::Changed
                        }
                        _ => Change::Irrelevant,
                    };
                }
                if !self.is_plugin(p) {
                    return Change::Irrelevant;
                }
                match event.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Settled(p.clone()),
                    EventKind::Modify(ModifyKind::Name(_)) if p.exists() => Change::Settled(p.clone()),
                    EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) | EventKind::Create(_) => {
                        Change::Changed
                    }
                    _ => Change::Irrelevant,
                }
            })
            .collect()
    }
}

/// Watches `plugins_dir` and the directory of `config_file` (so that a
/// config saved by rename is seen) on a thread of its own, and sends a
/// [`ReloadRequest`] per burst of changes, until `shutdown`.
pub fn start(
    plugins_dir: &Path,
    config_file: &Path,
    reloads: ReloadSender,
    shutdown: Shutdown,
) -> notify::Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let config_file = canon(config_file);
    let paths = Paths {
        plugins_dir: canon(plugins_dir),
        config_file: config_file.clone(),
    };
    let (tx, rx) = mpsc::channel();
    let fs = tx.clone();
    let mut inner = notify::recommended_watcher(move |event| {
        let _ = fs.send(Msg::Fs(event));
    })?;
    inner.watch(&paths.plugins_dir, RecursiveMode::NonRecursive)?;
    if let Some(dir) = config_file.parent().filter(|d| *d != paths.plugins_dir) {
        inner.watch(dir, RecursiveMode::NonRecursive)?;
    }
    shutdown.on_shutdown(move || {
        let _ = tx.send(Msg::Stop);
    });
    std::thread::Builder::new()
        .name("watcher".into())
        .spawn(move || {
            debounce(&paths, &rx, &reloads);
            // Stops the notifications, then says this task is done.
            drop(inner);
            drop(shutdown);
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(())
}

/// Runs until [`Msg::Stop`] arrives or the reload loop is gone.
fn debounce(paths: &Paths, rx: &mpsc::Receiver<Msg>, reloads: &ReloadSender) {
    loop {
        let mut settled = BTreeSet::new();
        // Whether an event is about our files. Others (a sink file written in
        // the config's folder, say) neither start nor extend the quiet time.
        let mut note = |event: notify::Result<notify::Event>| -> bool {
            let event = match event {
                Ok(event) => event,
                // An overflow or a watch error: reload to be sure nothing was missed.
                Err(e) => {
                    tracing::warn!(error = %e, "file watcher error; reloading to be safe");
                    return true;
                }
            };
            let mut relevant = false;
            for change in paths.classify(&event) {
                match change {
                    Change::Irrelevant => {}
                    Change::Changed => relevant = true,
                    Change::Settled(p) => {
                        relevant = true;
                        settled.insert(p);
                    }
                }
            }
            relevant
        };
        loop {
            match rx.recv() {
                Ok(Msg::Fs(event)) => {
                    if note(event) {
                        break;
                    }
                }
                Ok(Msg::Stop) | Err(_) => return,
            }
        }
        let started = Instant::now();
        let mut quiet_until = Instant::now() + DEBOUNCE;
        loop {
            let now = Instant::now();
            let deadline = quiet_until.min(started + MAX_DELAY);
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(Msg::Fs(event)) => {
                    if note(event) {
                        quiet_until = Instant::now() + DEBOUNCE;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        tracing::debug!(settled = settled.len(), "change noticed; asking for a reload");
        if reloads.send(ReloadRequest { settled, reply: None }).is_err() {
            return;
        }
    }
}
