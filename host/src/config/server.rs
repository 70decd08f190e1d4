//! `[server]` (the ingest listener, the queue, the workers) and `[admin]`
//! (an optional listener of its own for the admin endpoints).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::raw::RawServer;
use super::validate::Validator;

/// `[server]`. Every key is applied at start only (see
/// [`super::restart_only_changes`]).
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, enforced while reading.
    pub max_body: u64,
    /// Events accepted but not yet handled; beyond this ingest answers 503.
    pub queue: usize,
    /// Threads running wasm; 0 in the file means one per core.
    pub workers: usize,
    /// How long a client may take to send request headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a whole request body, from the
    /// end of its headers; then 408 and the connection closes (issue 17).
    pub body_timeout: Duration,
    /// Open connections per listener; past it 503 and close (issue 17).
    pub max_connections: usize,
    /// How long a write to a client may stay pending (it stopped reading)
    /// before its connection is closed.
    pub send_timeout: Duration,
}

/// `[server] listen` when not set.
const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let listen = match &raw.listen {
            None => SocketAddr::from(DEFAULT_LISTEN),
            Some(s) => {
                let parsed = s.get_ref().parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "invalid address {:?}: expected IP:PORT, like \"127.0.0.1:7600\"",
                        s.get_ref()
                    )
                });
                self.check(s.span(), "server.listen", parsed)
                    .unwrap_or(SocketAddr::from(DEFAULT_LISTEN))
            }
        };
        ServerConfig {
            listen,
            max_body: self.size(&raw.max_body, "server.max_body", 1..(1 << 32), 1 << 20),
            queue: self.int(&raw.queue, "server.queue", 1..10_000_001, 10_000) as usize,
            workers: match self.int(&raw.workers, "server.workers", 0..257, 0) {
                0 => num_cpus::get().max(1),
                n => n as usize,
            },
            header_timeout: self.duration(
                &raw.header_timeout,
                "server.header_timeout",
                Duration::from_secs(10),
            ),
            body_timeout: self.duration(&raw.body_timeout, "server.body_timeout", Duration::from_secs(10)),
            max_connections: self.int(&raw.max_connections, "server.max_connections", 1..1_000_001, 1024)
                as usize,
            send_timeout: self.duration(&raw.send_timeout, "server.send_timeout", Duration::from_secs(10)),
        }
    }

    fn listen_addr(&mut self, value: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        let parsed = value.get_ref().parse::<SocketAddr>().map_err(|_| {
            format!(
                "invalid address {:?}: expected IP:PORT, like \"127.0.0.1:7601\"",
                value.get_ref()
            )
        });
        self.check(value.span(), what, parsed)
    }

    pub fn admin(&mut self, raw: &RawAdmin, server: SocketAddr) -> Option<SocketAddr> {
        let listen = raw.listen.as_ref()?;
        let addr = self.listen_addr(listen, "admin.listen")?;
        if addr == server && addr.port() != 0 {
            self.error(
                Some(listen.span()),
                format!("admin.listen: {addr} is also [server] listen; give the admin listener its own port"),
            );
            return None;
        }
        Some(addr)
    }
}
