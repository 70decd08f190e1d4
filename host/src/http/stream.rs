//! `GET /v1/stream?name=GLOB`: the HTTP side of the live stream. The hub
//! that workers publish to is [`crate::telemetry::StreamHub`] (no HTTP in
//! it); here a subscription becomes a response body, as NDJSON or
//! Server-Sent Events, with heartbeats when idle and a final line saying
//! why it ended (cut off, or shutdown).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use tokio::sync::Notify;

use crate::router::NameGlob;
use crate::telemetry::{StreamHub, SubscribeError, Subscription};

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

/// Subscribes to `hub` (see [`StreamHub::subscribe`]): the response body
/// of one subscription, framed as `framing`.
pub fn subscribe(
    hub: &Arc<StreamHub>,
    glob: Option<NameGlob>,
    framing: Framing,
    kill: Option<Arc<Notify>>,
) -> Result<StreamBody, SubscribeError> {
    let sub = hub.subscribe(glob, kill)?;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ok(StreamBody {
        sub,
        framing,
        heartbeat,
        done: false,
    })
}

/// The response body of one subscription.
pub struct StreamBody {
    sub: Subscription,
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
                    self.sub.buffer()
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
        match self.sub.poll_next(cx) {
            Poll::Ready(Some(json)) => {
                self.heartbeat.reset();
                Poll::Ready(Some(Ok(Frame::data(self.event_frame(json)))))
            }
            Poll::Ready(None) => {
                // The hub dropped the sender: shutdown (or a cut-off that
                // raced with it).
                self.done = true;
                let reason = if self.sub.is_cut_off() {
                    EndReason::CutOff
                } else {
                    EndReason::Shutdown
                };
                Poll::Ready(Some(Ok(Frame::data(self.end_frame(reason)))))
            }
            Poll::Pending => {
                if self.sub.is_cut_off() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;
    use crate::telemetry::Metrics;
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
        let mut a = subscribe(&h, Some(NameGlob::new("a.*").unwrap()), Framing::Ndjson, None).unwrap();
        let mut all = subscribe(&h, None, Framing::Sse, None).unwrap();
        assert_eq!(
            subscribe(&h, None, Framing::Ndjson, None).err(),
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
        let mut s = subscribe(&h, None, Framing::Ndjson, None).unwrap();
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
        let _stuck = subscribe(&h, None, Framing::Ndjson, Some(kill.clone())).unwrap();
        for i in 0..3 {
            h.publish("a.X", format!("{{\"n\":{i}}}").as_bytes());
        }
        tokio::time::timeout(Duration::from_secs(5), kill.notified())
            .await
            .expect("the watchdog closes the connection after the grace");

        // A subscriber that goes away by itself is left alone.
        let quiet = Arc::new(Notify::new());
        let gone = subscribe(&h, None, Framing::Ndjson, Some(quiet.clone())).unwrap();
        drop(gone);
        assert!(tokio::time::timeout(Duration::from_millis(300), quiet.notified())
            .await
            .is_err());
    }
}
