//! Process signals: SIGTERM and SIGINT stop the daemon, SIGHUP reloads it.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::reload::{ReloadRequest, ReloadSender};
use crate::shutdown::Shutdown;

/// The process's signal handlers, installed before anything else happens
/// (issue 16): from then on SIGHUP, SIGTERM and SIGINT are never the
/// default action (ending the process), whatever stage start-up is at.
pub struct Signals {
    term: Signal,
    int: Signal,
    /// Only held: its handler, once installed, stays for the process's
    /// life; [`super::Daemon::bind`] watches its own stream to reload.
    _hup: Signal,
}

impl Signals {
    /// Installs the handlers; needs a Tokio runtime.
    pub fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            _hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Resolves when SIGINT or SIGTERM arrives (or arrived since install).
    pub async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

/// Watches SIGHUP from now on, asking for a reload at each, until
/// shutdown: a SIGHUP while starting must not end the daemon (its default
/// action; issue 16), and the reload it asks for waits in the queue until
/// the reload loop runs.
pub(super) fn reload_on_sighup(reloads: ReloadSender, mut shutdown: Shutdown) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading");
                    let _ = reloads.send(ReloadRequest::plain());
                }
                _ = shutdown.recv() => return,
            }
        }
    });
}
