//! `GET /v1/stream?name=GLOB`: every event the router sees (ingested and
//! emitted, matched or not), live, as NDJSON or Server-Sent Events.
//!
//! Workers publish; subscribers never slow them down. Each subscriber has a
//! bounded buffer (`[stream] buffer` events). Publishing is a non-blocking
//! `try_send`; when a subscriber's buffer is full, the subscriber is cut
//! off: it gets no further events, its client receives what was buffered and
//! then a final error line, and the cut-off is counted. A client that does
//! not read even that within `[stream] cutoff_grace` has its connection
//! closed.
//!
//! With no subscriber, publishing is one atomic load: no lock, no allocation.
//! With subscribers, the event JSON is copied once into a shared `Bytes`
//! (only if some subscriber's glob matches) and framed per subscriber in its
//! own connection task.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use tokio::sync::{mpsc, Notify};

pub use crate::config::StreamConfig;
use crate::metrics::Metrics;
use crate::router::NameGlob;

/// Idle time after which a heartbeat is sent (a blank NDJSON line, an SSE
/// comment), so proxies keep the connection and dead clients are noticed.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How a subscriber's events are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document per line.
    Ndjson,
    /// `text/event-stream`: `id:` and `data:` per event.
    Sse,
}

impl Framing {
    /// SSE when the client's `Accept` names `text/event-stream`.
    pub fn from_accept(accept: Option<&str>) -> Framing {
        match accept {
            Some(a) if a.contains("text/event-stream") => Framing::Sse,
            _ => Framing::Ndjson,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Ndjson => "application/x-ndjson",
            Framing::Sse => "text/event-stream",
        }
    }
}

/// Why a subscription ended, as sent in its final line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    CutOff,
    Shutdown,
}

/// A subscriber as the hub sees it. The hub alone holds the sender, so
/// dropping it (at [`StreamHub::close`]) ends the body's receiver.
struct Subscriber {
    state: Arc<SubState>,
    /// `None`: every event.
    glob: Option<NameGlob>,
    tx: mpsc::Sender<Bytes>,
}

/// What the hub, the body and the watchdog share about one subscriber.
struct SubState {
    id: u64,
    cut_off: AtomicBool,
    /// Set when the response body is dropped (finished or disconnected).
    gone: AtomicBool,
    /// Wakes the watchdog: cut off, hub closed, or body gone.
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

struct HubMetrics {
    sent: prometheus_client::metrics::counter::Counter,
    cutoffs: prometheus_client::metrics::counter::Counter,
    subscribers: prometheus_client::metrics::gauge::Gauge,
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
                // The body is being dropped; its Drop removes the subscriber.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Registers a subscriber; events published from now on reach the body.
    /// `kill` closes the subscriber's connection (used when its client does
    /// not read its final message).
    pub fn subscribe(
        self: &Arc<Self>,
        glob: Option<NameGlob>,
        framing: Framing,
        kill: Option<Arc<Notify>>,
    ) -> Result<StreamBody, SubscribeError> {
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
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(StreamBody {
            hub: self.clone(),
            sub: state,
            rx,
            framing,
            heartbeat,
            done: false,
        })
    }

    fn remove(&self, id: u64) {
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.state.id != id);
        self.count.store(subs.len(), Relaxed);
        self.metrics.subscribers.set(subs.len() as i64);
    }

    /// Ends every subscription (at shutdown): each client gets what is
    /// buffered, then a final line saying the daemon is shutting down.
    pub fn close(&self) {
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Relaxed);
        // Dropping each sender lets its body drain what is buffered, then end.
        for s in subs.drain(..) {
            s.state.wake.notify_one();
        }
        self.count.store(0, Relaxed);
        self.metrics.subscribers.set(0);
    }

    pub fn subscribers(&self) -> usize {
        self.count.load(Relaxed)
    }
}

/// The response body of one subscription.
pub struct StreamBody {
    hub: Arc<StreamHub>,
    sub: Arc<SubState>,
    rx: mpsc::Receiver<Bytes>,
    framing: Framing,
    heartbeat: tokio::time::Interval,
    done: bool,
}

impl StreamBody {
    fn event_frame(&self, json: Bytes) -> Bytes {
        match self.framing {
            Framing::Ndjson => {
                let mut v = Vec::with_capacity(json.len() + 1);
                v.extend_from_slice(&json);
                v.push(b'\n');
                v.into()
            }
            Framing::Sse => {
                // The envelope is compact JSON: no newline can split `data:`.
                let mut v = Vec::with_capacity(json.len() + 48);
                if let Some(id) = envelope_id(&json) {
                    v.extend_from_slice(b"id: ");
                    v.extend_from_slice(id.as_bytes());
                    v.push(b'\n');
                }
                v.extend_from_slice(b"data: ");
                v.extend_from_slice(&json);
                v.extend_from_slice(b"\n\n");
                v.into()
            }
        }
    }

    fn end_frame(&self, reason: EndReason) -> Bytes {
        let line = match reason {
            EndReason::CutOff => json!({
                "error": format!(
                    "cut off: this subscriber fell {} events behind; events routed since were not sent; reconnect to resume",
                    self.hub.config.buffer
                ),
                "reason": "cut_off",
            }),
            EndReason::Shutdown => json!({
                "error": "the daemon is shutting down",
                "reason": "shutdown",
            }),
        };
        match self.framing {
            Framing::Ndjson => format!("{line}\n").into(),
            Framing::Sse => format!("event: error\ndata: {line}\n\n").into(),
        }
    }

    fn heartbeat_frame(&self) -> Bytes {
        match self.framing {
            Framing::Ndjson => Bytes::from_static(b"\n"),
            Framing::Sse => Bytes::from_static(b": keepalive\n\n"),
        }
    }
}

/// The `id` of a serialised envelope, which comes first (`{"id":"...`):
/// read without parsing the event; parsed in full only if it has escapes.
fn envelope_id(json: &[u8]) -> Option<String> {
    if let Some(rest) = json.strip_prefix(b"{\"id\":\"") {
        let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
        if rest[end] == b'"' {
            return std::str::from_utf8(&rest[..end]).ok().map(str::to_string);
        }
    }
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    // SSE `id:` ends at a newline; an id holding one is left out.
    v.get("id")?
        .as_str()
        .filter(|id| !id.contains(['\n', '\r']))
        .map(str::to_string)
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(json)) => {
                self.heartbeat.reset();
                Poll::Ready(Some(Ok(Frame::data(self.event_frame(json)))))
            }
            Poll::Ready(None) => {
                // The hub dropped the sender: shutdown (or a cut-off that
                // raced with it).
                self.done = true;
                let reason = if self.sub.cut_off.load(Relaxed) {
                    EndReason::CutOff
                } else {
                    EndReason::Shutdown
                };
                Poll::Ready(Some(Ok(Frame::data(self.end_frame(reason)))))
            }
            Poll::Pending => {
                if self.sub.cut_off.load(Relaxed) {
                    // Everything buffered before the cut-off has been sent.
                    self.done = true;
                    return Poll::Ready(Some(Ok(Frame::data(self.end_frame(EndReason::CutOff)))));
                }
                match self.heartbeat.poll_tick(cx) {
                    Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(self.heartbeat_frame())))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        self.sub.gone.store(true, Relaxed);
        self.sub.wake.notify_one();
        self.hub.remove(self.sub.id);
        tracing::info!(subscriber = self.sub.id, "stream subscriber disconnected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn hub(buffer: usize) -> (Arc<StreamHub>, Metrics) {
        let m = Metrics::default();
        let h = Arc::new(StreamHub::new(
            StreamConfig {
                buffer,
                max_subscribers: 2,
                cutoff_grace: Duration::from_millis(50),
            },
            &m,
        ));
        (h, m)
    }

    async fn next(body: &mut StreamBody) -> String {
        let frame = body.frame().await.unwrap().unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn globs_select_and_nobody_listening_costs_nothing() {
        let (h, m) = hub(8);
        assert!(!h.is_active());
        h.publish("a.X", br#"{"id":"0","name":"a.X"}"#);
        let mut a = h
            .subscribe(Some(NameGlob::new("a.*").unwrap()), Framing::Ndjson, None)
            .unwrap();
        let mut all = h.subscribe(None, Framing::Sse, None).unwrap();
        assert_eq!(
            h.subscribe(None, Framing::Ndjson, None).err(),
            Some(SubscribeError::TooMany(2))
        );
        h.publish("b.Y", br#"{"id":"1","name":"b.Y"}"#);
        h.publish("a.Z", br#"{"id":"2","name":"a.Z"}"#);
        assert_eq!(next(&mut a).await, "{\"id\":\"2\",\"name\":\"a.Z\"}\n");
        assert_eq!(
            next(&mut all).await,
            "id: 1\ndata: {\"id\":\"1\",\"name\":\"b.Y\"}\n\n"
        );
        assert_eq!(m.stream_sent.get(), 3);
        drop(a);
        assert_eq!(h.subscribers(), 1);
        h.close();
        assert_eq!(
            next(&mut all).await,
            "id: 2\ndata: {\"id\":\"2\",\"name\":\"a.Z\"}\n\n"
        );
        assert!(next(&mut all)
            .await
            .starts_with("event: error\ndata: {\"error\":\"the daemon is shutting down\""));
        assert!(all.frame().await.is_none());
    }

    #[test]
    fn ids_for_sse() {
        assert_eq!(envelope_id(br#"{"id":"01A","name":"a"}"#).as_deref(), Some("01A"));
        assert_eq!(
            envelope_id(br#"{"id":"a\"b","name":"a"}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(envelope_id(br#"{"id":"a\nb"}"#), None);
        assert_eq!(envelope_id(br#"{"n":0}"#), None);
    }

    #[tokio::test]
    async fn a_full_buffer_cuts_off_once_after_what_was_buffered() {
        let (h, m) = hub(2);
        let mut s = h.subscribe(None, Framing::Ndjson, None).unwrap();
        for i in 0..10 {
            h.publish("a.X", format!("{{\"n\":{i}}}").as_bytes());
        }
        assert_eq!(m.stream_cutoffs.get(), 1);
        assert_eq!(m.stream_sent.get(), 2);
        assert_eq!(next(&mut s).await, "{\"n\":0}\n");
        assert_eq!(next(&mut s).await, "{\"n\":1}\n");
        let last = next(&mut s).await;
        assert!(last.contains("\"reason\":\"cut_off\""), "{last}");
        assert!(s.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_cut_off_subscriber_that_does_not_read_is_disconnected() {
        let (h, _) = hub(2);
        let kill = Arc::new(Notify::new());
        let _stuck = h.subscribe(None, Framing::Ndjson, Some(kill.clone())).unwrap();
        for i in 0..3 {
            h.publish("a.X", format!("{{\"n\":{i}}}").as_bytes());
        }
        tokio::time::timeout(Duration::from_secs(5), kill.notified())
            .await
            .expect("the watchdog closes the connection after the grace");

        // A subscriber that goes away by itself is left alone.
        let quiet = Arc::new(Notify::new());
        let gone = h.subscribe(None, Framing::Ndjson, Some(quiet.clone())).unwrap();
        drop(gone);
        assert!(tokio::time::timeout(Duration::from_millis(300), quiet.notified())
            .await
            .is_err());
    }
}
