//! The accept loop of one listener: connection limits (`max_connections`,
//! `header_timeout`, `send_timeout`; issue 17) and the graceful drain at
//! shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use super::{routes, send_timeout, AppState, Role};
use crate::shutdown::Shutdown;
use crate::telemetry::Stats;

/// How long open requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-listener connection limits from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `header_timeout`: how long a client may take to send request headers.
    pub header_timeout: Duration,
    /// `max_connections`: open connections on one listener; past it a new
    /// connection gets a 503 and is closed (issue 17, item 7).
    pub max_connections: usize,
    /// `send_timeout`: how long a write to the client may stay pending
    /// before the connection is closed (a client that stopped reading).
    pub send_timeout: Duration,
}

/// What a connection beyond `max_connections` is told before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 70\r\n\r\n\
    {\"error\":\"too many open connections (max_connections); retry shortly\"}";

/// Accepts connections until `shutdown`, then lets open requests finish
/// (for up to 30 s) and drops `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    role: Role,
    limits: ConnLimits,
    mut shutdown: Shutdown,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refused connections being answered; past as many again they are just closed.
    let lingering = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Stats::add(&state.stats.connections_refused, 1);
            tracing::debug!(%peer, max = limits.max_connections, "too many connections; refusing one");
            if let Ok(linger) = lingering.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(linger);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stats = state.stats.clone();
        let state = state.clone();
        // Closes this connection: for a stream subscriber that stopped reading.
        let kill = Arc::new(Notify::new());
        let killer = kill.clone();
        let service = service_fn(move |req| {
            let (state, kill) = (state.clone(), kill.clone());
            async move { Ok::<_, Infallible>(routes::route(&state, role, req, peer, kill).await) }
        });
        let io = send_timeout::SendTimeout::new(stream, limits.send_timeout, stats);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                done = conn => if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = killer.notified() => tracing::debug!(%peer, "connection closed by the server"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Answers 503 past `max_connections` and closes without a reset: what the
/// client already sent is read and dropped for up to a second (a lingering
/// close), so that it sees the answer rather than ECONNRESET.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let linger = async {
        stream.write_all(TOO_MANY_CONNECTIONS).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_too_many_connections_answer_is_well_formed() {
        let text = std::str::from_utf8(super::TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("max_connections"));
    }
}
