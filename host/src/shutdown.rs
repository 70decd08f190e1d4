//! The one shutdown signal every long-running task listens to, after
//! mini-redis's `src/shutdown.rs`: a [`Trigger`] hands out [`Shutdown`]s;
//! [`Trigger::fire`] tells all of them at once; each task drops its
//! `Shutdown` when it has finished stopping, and [`Trigger::complete`]
//! resolves once every one is dropped (drop-to-complete).
//!
//! Async tasks wait with [`Shutdown::recv`]. A task on a thread of its own
//! that blocks on something else (a tail source on its doorbell, the
//! watcher on filesystem events) registers [`Shutdown::on_shutdown`] to be
//! woken; it still holds its `Shutdown` until it is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

/// A callback run once when shutdown begins.
type Hook = Box<dyn FnOnce() + Send>;

struct Inner {
    fired: AtomicBool,
    /// Run by [`Trigger::fire`]; registered under this lock so that none
    /// is missed by a fire that races with it.
    hooks: Mutex<Vec<Hook>>,
    tx: watch::Sender<bool>,
}

/// Starts a shutdown and waits for it to complete.
pub struct Trigger {
    inner: Arc<Inner>,
    /// Cloned into every [`Shutdown`]; dropped by [`Trigger::complete`].
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

/// One task's view of the shutdown signal; dropping it says the task has
/// finished stopping.
pub struct Shutdown {
    inner: Arc<Inner>,
    rx: watch::Receiver<bool>,
    /// Held, never sent on: its drop is what [`Trigger::complete`] waits for.
    _done: mpsc::Sender<()>,
}

impl Default for Trigger {
    fn default() -> Trigger {
        Trigger::new()
    }
}

impl Trigger {
    pub fn new() -> Trigger {
        let (tx, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        Trigger {
            inner: Arc::new(Inner {
                fired: AtomicBool::new(false),
                hooks: Mutex::new(Vec::new()),
                tx,
            }),
            done_tx,
            done_rx,
        }
    }

    /// A view of the signal that completion does not wait for.
    pub fn observer(&self) -> Observer {
        Observer {
            inner: self.inner.clone(),
        }
    }

    /// A `Shutdown` for one more task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            inner: self.inner.clone(),
            rx: self.inner.tx.subscribe(),
            _done: self.done_tx.clone(),
        }
    }

    /// Tells every task to stop: wakes [`Shutdown::recv`] and runs the
    /// [`Shutdown::on_shutdown`] hooks. Firing again does nothing.
    pub fn fire(&self) {
        let hooks = {
            let mut hooks = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
            if self.inner.fired.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *hooks)
        };
        self.inner.tx.send_replace(true);
        for hook in hooks {
            hook();
        }
    }

    /// Fires, then waits until every `Shutdown` handed out is dropped.
    pub async fn complete(self) {
        self.fire();
        let Trigger {
            done_tx, mut done_rx, ..
        } = self;
        drop(done_tx);
        // Nothing is ever sent: `None` once the last sender is dropped.
        let _ = done_rx.recv().await;
    }
}

impl Inner {
    fn on_shutdown(&self, hook: impl FnOnce() + Send + 'static) {
        {
            let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
            if !self.fired.load(Ordering::Acquire) {
                hooks.push(Box::new(hook));
                return;
            }
        }
        hook();
    }
}

impl Shutdown {
    /// Resolves once shutdown has begun (at once if it has).
    pub async fn recv(&mut self) {
        // The sender lives as long as `inner`, which this holds: no error.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }

    /// Runs `hook` once when shutdown begins (now, if it has): how a task
    /// blocked on something else is woken.
    pub fn on_shutdown(&self, hook: impl FnOnce() + Send + 'static) {
        self.inner.on_shutdown(hook);
    }
}

/// The same signal seen by state that outlives the tasks (the HTTP state's
/// readiness, the live-stream hub): it tells whether shutdown has begun
/// and runs hooks then, but takes no part in completion, so holding one
/// does not keep [`Trigger::complete`] waiting.
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

impl Observer {
    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        self.inner.fired.load(Ordering::Acquire)
    }

    /// Runs `hook` once when shutdown begins (now, if it has).
    pub fn on_shutdown(&self, hook: impl FnOnce() + Send + 'static) {
        self.inner.on_shutdown(hook);
    }
}

impl Clone for Shutdown {
    /// Another task's `Shutdown`: completion waits for it too.
    fn clone(&self) -> Shutdown {
        Shutdown {
            inner: self.inner.clone(),
            rx: self.rx.clone(),
            _done: self._done.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn completes_once_every_task_has_dropped_its_shutdown() {
        let trigger = Trigger::new();
        let mut a = trigger.subscribe();
        let b = trigger.subscribe();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        b.on_shutdown(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let stopped = Arc::new(AtomicBool::new(false));
        let s = stopped.clone();
        let task = tokio::spawn(async move {
            a.recv().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.store(true, Ordering::SeqCst);
            // `a` is dropped here, after the flag is set.
        });
        let seen = trigger.observer();
        let thread = std::thread::spawn(move || {
            while !seen.is_shutdown() {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(b);
        });
        tokio::time::timeout(Duration::from_secs(5), trigger.complete())
            .await
            .expect("completes once both are dropped");
        assert!(
            stopped.load(Ordering::SeqCst),
            "completed before the task stopped"
        );
        task.await.unwrap();
        thread.join().unwrap();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_late_subscriber_sees_the_shutdown_and_runs_its_hook_at_once() {
        let trigger = Trigger::new();
        trigger.fire();
        let mut late = trigger.subscribe();
        assert!(trigger.observer().is_shutdown());
        tokio::time::timeout(Duration::from_secs(1), late.recv())
            .await
            .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        late.on_shutdown(move || r.store(true, Ordering::SeqCst));
        assert!(ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_observer_sees_the_shutdown_without_holding_its_completion() {
        let trigger = Trigger::new();
        let observer = trigger.observer();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        observer.on_shutdown(move || r.store(true, Ordering::SeqCst));
        assert!(!observer.is_shutdown());
        tokio::time::timeout(Duration::from_secs(5), trigger.complete())
            .await
            .expect("an observer does not hold completion");
        assert!(observer.is_shutdown());
        assert!(ran.load(Ordering::SeqCst));
    }
}
