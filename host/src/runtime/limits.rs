//! The budgets every invocation runs under, whatever the kind of guest:
//! fuel, the memory cap and the deadline (in wasm through the epoch, in
//! host calls through [`Deadline`]). The settings come from
//! [`crate::config::Limits`]; DESIGN.md: "Every way a guest can spend
//! time, in wasm or blocked in a host call, is bounded by its deadline".

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store};

use super::failure::DeadlinePassed;
use super::host::HostState;
use super::Runtime;
use crate::config::Limits;

/// Table elements a guest may grow a table to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Refuses linear-memory growth past the plugin's cap, and remembers that it
/// did so the failure is reported as `memory_limit` rather than a plain trap.
pub struct MemoryCap {
    /// Bytes of linear memory the guest may have.
    pub cap: usize,
    /// The refusal's message, once a growth was refused in this call.
    pub hit: Option<String>,
    /// Bytes of the largest linear memory granted so far: how much a guest
    /// with no one exported memory (a component) uses.
    pub largest: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            let msg = format!(
                "linear memory would grow from {current} to {desired} bytes, over the cap of {} bytes",
                self.cap
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        self.largest = self.largest.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The invocation's wall-clock deadline, as host calls see it.
///
/// Epoch interruption stops wasm code, but not a host call that waits, so
/// every host function that can wait (WASI `poll_oneoff` today; KV or
/// network calls later) asks this, the one place that knows the deadline,
/// how long it may wait, and ends the run as `timeout` when the wait would
/// outlast it (issue 16). Armed with the epoch deadline, per call.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the current call (or instantiation) must be over.
    pub at: Instant,
    /// The plugin's `timeout`, for messages.
    pub timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn starting_now(timeout: Duration) -> Deadline {
        Deadline {
            at: crate::config::units::instant_after(Instant::now(), timeout),
            timeout,
        }
    }

    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether a host call may wait `wait`: `Ok` when it ends before the
    /// deadline, else the error that ends the invocation as `timeout`
    /// (at once: waiting out the rest would only hold the worker longer).
    pub fn allow(&self, wait: Duration, what: &str) -> Result<(), DeadlinePassed> {
        let left = self.remaining();
        if wait <= left {
            return Ok(());
        }
        Err(DeadlinePassed(format!(
            "{what} would wait {wait:?}, past the deadline of {:?} ({left:?} left)",
            self.timeout
        )))
    }
}

/// Gives a store a full fuel budget and a fresh deadline, both for wasm
/// (the epoch) and for host calls that may wait ([`Deadline`]): before an
/// instantiation and before every call of a kept instance.
pub fn arm(store: &mut Store<HostState>, limits: &Limits) {
    store
        .set_fuel(limits.fuel)
        .expect("fuel is enabled on the engine");
    store.set_epoch_deadline(Runtime::deadline_ticks(limits.timeout));
    store.data_mut().deadline = Deadline::starting_now(limits.timeout);
}
