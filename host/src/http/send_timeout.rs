//! A bound on how long a write to a client may stay pending (issue 17
//! follow-up: a client that stops reading kept its connection, and its
//! `max_connections` slot, forever).
//!
//! [`SendTimeout`] wraps an accepted connection. When a write or flush
//! cannot make progress (the client's receive window is full), a timer of
//! `[server] send_timeout` starts; any progress stops it. If it runs out
//! the write fails with `TimedOut`, hyper ends the connection, its slot is
//! freed and `http_send_timeouts_total` counts it. A `/v1/stream`
//! subscriber that reads is never pending that long; one that stops
//! reading is cut the same way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::telemetry::Stats;

/// An `AsyncRead + AsyncWrite` whose writes fail with
/// [`io::ErrorKind::TimedOut`] after `limit` without progress.
pub struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Running while a write or flush is pending; `None` after progress.
    stalled: Option<Pin<Box<Sleep>>>,
    stats: Arc<Stats>,
    counted: bool,
}

impl<S> SendTimeout<S> {
    pub fn new(inner: S, limit: Duration, stats: Arc<Stats>) -> Self {
        SendTimeout {
            inner,
            limit,
            stalled: None,
            stats,
            counted: false,
        }
    }

    /// Starts the timer on `Pending`, stops it on progress, fails once it ran out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if !self.counted {
            self.counted = true;
            Stats::add(&self.stats.send_timeouts, 1);
            tracing::debug!(timeout = ?limit, "client stopped reading; closing its connection");
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for send_timeout ({})",
                humantime::format_duration(limit)
            ),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}
