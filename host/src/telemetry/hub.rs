//! The live-stream hub behind `GET /v1/stream`: every event the router
//! sees (ingested and emitted, matched or not), handed to subscribers. No
//! HTTP here: the response body that frames a [`Subscription`] (NDJSON or
//! SSE) is in the HTTP layer, `http/stream.rs`.
//!
//! Workers publish; subscribers never slow them down. Each subscriber has a
//! bounded buffer (`[stream] buffer` events). Publishing is a non-blocking
//! `try_send`; when a subscriber's buffer is full, the subscriber is cut
//! off: it gets no further events, its client receives what was buffered and
//! then a final error line, and the cut-off is counted. A client that does
//! not read even that within `[stream] cutoff_grace` has its connection
//! closed (the `kill` given to [`StreamHub::subscribe`]).
//!
//! With no subscriber, publishing is one atomic load: no lock, no allocation.
//! With subscribers, the event JSON is copied once into a shared `Bytes`
//! (only if some subscriber's glob matches) and framed per subscriber in its
//! own connection task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, Notify};

use super::Metrics;
use crate::config::StreamConfig;
use crate::router::NameGlob;

/// A subscriber as the hub sees it. The hub alone holds the sender, so
/// dropping it (at [`StreamHub::close`]) ends the subscription's receiver.
struct Subscriber {
    state: Arc<SubState>,
    /// `None`: every event.
    glob: Option<NameGlob>,
    tx: mpsc::Sender<Bytes>,
}

/// What the hub, the subscription and the watchdog share about one subscriber.
struct SubState {
    id: u64,
    cut_off: AtomicBool,
    /// Set when the subscription is dropped (finished or disconnected).
    gone: AtomicBool,
    /// Wakes the watchdog: cut off, hub closed, or subscription gone.
    wake: Notify,
}

/// Subscribers, shared by the workers (publishing) and the HTTP server.
pub struct StreamHub {
    config: StreamConfig,
    subscribers: RwLock<Vec<Subscriber>>,
    /// `subscribers.len()`, readable without the lock.
    count: AtomicUsize,
    next_id: AtomicU64,
    closed: AtomicBool,
    metrics: HubMetrics,
}

/// The stream's metrics ([`Metrics`]'s `stream_*`), held by the hub.
struct HubMetrics {
    sent: Counter,
    cutoffs: Counter,
    subscribers: Gauge,
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubscribeError {
    #[error("{0} stream subscribers are connected, the most [stream] max_subscribers allows; retry later")]
    TooMany(usize),
    #[error("the daemon is shutting down")]
    Closed,
}

impl StreamHub {
    pub fn new(config: StreamConfig, metrics: &Metrics) -> StreamHub {
        StreamHub {
            config,
            subscribers: RwLock::new(Vec::new()),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            metrics: HubMetrics {
                sent: metrics.stream_sent.clone(),
                cutoffs: metrics.stream_cutoffs.clone(),
                subscribers: metrics.stream_subscribers.clone(),
            },
        }
    }

    /// Whether anyone listens: the only cost of publishing when nobody does.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.count.load(Relaxed) != 0
    }

    /// Hands one routed event to every subscriber whose glob matches its
    /// name, without ever waiting. Called from worker threads.
    pub fn publish(&self, name: &str, event_json: &[u8]) {
        if !self.is_active() {
            return;
        }
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        let mut bytes: Option<Bytes> = None;
        for s in subs.iter() {
            let st = &s.state;
            if st.cut_off.load(Relaxed) || s.glob.as_ref().is_some_and(|g| !g.is_match(name)) {
                continue;
            }
            let b = bytes
                .get_or_insert_with(|| Bytes::copy_from_slice(event_json))
                .clone();
            match s.tx.try_send(b) {
                Ok(()) => {
                    self.metrics.sent.inc();
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !st.cut_off.swap(true, Relaxed) {
                        self.metrics.cutoffs.inc();
                        tracing::warn!(
                            subscriber = st.id,
                            buffer = self.config.buffer,
                            "stream subscriber fell too far behind; cut off"
                        );
                        st.wake.notify_one();
                    }
                }
                // The subscription is being dropped; its Drop removes it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Registers a subscriber; events published from now on reach the
    /// subscription. `kill` closes the subscriber's connection (used when
    /// its client does not read its final message).
    pub fn subscribe(
        self: &Arc<Self>,
        glob: Option<NameGlob>,
        kill: Option<Arc<Notify>>,
    ) -> Result<Subscription, SubscribeError> {
        let (tx, rx) = mpsc::channel(self.config.buffer.max(1));
        let state = Arc::new(SubState {
            id: self.next_id.fetch_add(1, Relaxed),
            cut_off: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let what = glob.as_ref().map_or("*", |g| g.as_str()).to_string();
        {
            let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
            // Checked under the lock so that `close` cannot miss this one.
            if self.closed.load(Relaxed) {
                return Err(SubscribeError::Closed);
            }
            if subs.len() >= self.config.max_subscribers {
                return Err(SubscribeError::TooMany(subs.len()));
            }
            subs.push(Subscriber {
                state: state.clone(),
                glob,
                tx,
            });
            self.count.store(subs.len(), Relaxed);
            self.metrics.subscribers.set(subs.len() as i64);
        }
        tracing::info!(subscriber = state.id, glob = %what, "stream subscriber connected");
        if let Some(kill) = kill {
            let watched = state.clone();
            let grace = self.config.cutoff_grace;
            tokio::spawn(async move {
                watched.wake.notified().await;
                if watched.gone.load(Relaxed) {
                    return;
                }
                tokio::time::sleep(grace).await;
                if !watched.gone.load(Relaxed) {
                    tracing::info!(
                        subscriber = watched.id,
                        "closing the connection of a stream subscriber that does not read"
                    );
                    kill.notify_one();
                }
            });
        }
        Ok(Subscription {
            hub: self.clone(),
            sub: state,
            rx,
        })
    }

    fn remove(&self, id: u64) {
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.state.id != id);
        self.count.store(subs.len(), Relaxed);
        self.metrics.subscribers.set(subs.len() as i64);
    }

    /// Ends every subscription (at shutdown): each gets what is buffered,
    /// then its end (`Poll::Ready(None)` from [`Subscription::poll_next`]).
    pub fn close(&self) {
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Relaxed);
        // Dropping each sender lets its subscription drain what is buffered, then end.
        for s in subs.drain(..) {
            s.state.wake.notify_one();
        }
        self.count.store(0, Relaxed);
        self.metrics.subscribers.set(0);
    }

    #[cfg(test)]
    pub fn subscribers(&self) -> usize {
        self.count.load(Relaxed)
    }
}

/// One subscriber's end: the events published for it, in order. Dropping
/// it unsubscribes.
pub struct Subscription {
    hub: Arc<StreamHub>,
    sub: Arc<SubState>,
    rx: mpsc::Receiver<Bytes>,
}

impl Subscription {
    /// The next event's JSON; `Ready(None)` once the hub dropped this
    /// subscriber (shutdown, or a cut-off that raced with it) and
    /// everything buffered was taken.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.rx.poll_recv(cx)
    }

    /// Whether it was cut off for falling [`Subscription::buffer`] events behind.
    pub fn is_cut_off(&self) -> bool {
        self.sub.cut_off.load(Relaxed)
    }

    /// Events buffered per subscriber (`[stream] buffer`).
    pub fn buffer(&self) -> usize {
        self.hub.config.buffer
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.sub.gone.store(true, Relaxed);
        self.sub.wake.notify_one();
        self.hub.remove(self.sub.id);
        tracing::info!(subscriber = self.sub.id, "stream subscriber disconnected");
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    fn hub(buffer: usize) -> (Arc<StreamHub>, Metrics) {
        let m = Metrics::default();
        let config = StreamConfig {
            buffer,
            max_subscribers: 1,
            cutoff_grace: Duration::from_millis(50),
        };
        (Arc::new(StreamHub::new(config, &m)), m)
    }

    #[tokio::test]
    async fn a_subscription_takes_what_matches_then_ends_when_the_hub_closes() {
        let (h, m) = hub(4);
        let mut s = h.subscribe(Some(NameGlob::new("a.*").unwrap()), None).unwrap();
        assert_eq!(h.subscribe(None, None).err(), Some(SubscribeError::TooMany(1)));
        h.publish("b.X", b"1");
        h.publish("a.X", b"2");
        h.close();
        assert_eq!(poll_fn(|cx| s.poll_next(cx)).await.as_deref(), Some(&b"2"[..]));
        assert_eq!(poll_fn(|cx| s.poll_next(cx)).await, None);
        assert!(!s.is_cut_off());
        assert_eq!((m.stream_sent.get(), m.stream_subscribers.get()), (1, 0));
        assert_eq!(h.subscribe(None, None).err(), Some(SubscribeError::Closed));
    }

    #[tokio::test]
    async fn a_full_buffer_cuts_off_and_dropping_unsubscribes() {
        let (h, m) = hub(1);
        let s = h.subscribe(None, None).unwrap();
        for _ in 0..3 {
            h.publish("a.X", b"{}");
        }
        assert!(s.is_cut_off());
        assert_eq!((m.stream_sent.get(), m.stream_cutoffs.get()), (1, 1));
        assert_eq!(s.buffer(), 1);
        drop(s);
        assert!(!h.is_active());
        assert_eq!(m.stream_subscribers.get(), 0);
    }
}
