//! The queue seam: how events get from producers (HTTP ingest, sources) to
//! the workers, and how producers learn that an event was accepted and
//! that it was handled.
//!
//! Two sides, two traits:
//! - [`Submitter`] is what producers hold. `Ok` from a submit means
//!   *accepted*: the queue owns the events (memory today: they are in the
//!   channel; a disk queue would answer once they are fsynced, a JetStream
//!   queue once the stream acknowledged them). The [`Receipt`] it returns
//!   gives, per event, a [`Handled`] that resolves once the event is
//!   *handled*: handlers ran, emitted events were routed, sinks and dead
//!   letters flushed. `?wait=true` and tail checkpoints wait on these.
//! - [`Queue`] is what workers read: [`Queue::recv`] hands out a
//!   [`Delivery`] with a token of the queue's own type, and
//!   [`Queue::handled`] gives the tokens back once those events are
//!   handled (the memory queue frees their places and answers the waiting
//!   producers; a disk queue would drop them from its log, a JetStream
//!   consumer would ack them). Workers never see how a queue acknowledges.
//!
//! Admission is all or nothing (issue 7): a batch is accepted whole or
//! refused whole. [`Submitter::durable`] says whether accepted survives
//! `kill -9` (the disk queue, issue 12).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::report::EventReport;
use crate::event::Event;

/// Why a batch was not accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SubmitError {
    #[error("the queue is full ({capacity} events waiting); retry later")]
    Full { capacity: usize },
    #[error(
        "a batch of {len} events is larger than the whole queue ({capacity} events); send smaller batches"
    )]
    TooLarge { len: usize, capacity: usize },
    #[error("the daemon is shutting down")]
    Closed,
    /// The disk queue holds `max_bytes` of segments (`[queue] max_bytes`):
    /// like `Full`, [`Submitter::submit`] waits for room and
    /// [`Submitter::try_submit`] refuses.
    #[error("the disk queue is full ({max_bytes} bytes waiting); retry later")]
    Backlog { max_bytes: u64 },
    /// The disk queue cannot write (a full disk, a file too large, an I/O
    /// error): both submits refuse at once; a later submit tries again, so
    /// the queue recovers by itself once the disk does.
    #[error("the queue cannot write to disk: {reason}; retry later")]
    Unavailable { reason: String },
}

/// What a producer wants to hear about the events it submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Only that they were accepted (`202`): no [`Handled`] is made.
    Accepted,
    /// When each was handled, with a bare report (tail checkpoints: they
    /// need "when" and whether a dead letter went unwritten).
    Handled,
    /// When each was handled, with a report listing routes, handler
    /// outcomes and emitted events (`?wait=true`).
    Report,
}

/// A boxed future, for trait methods that wait.
pub type Waiting<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The producers' side of a queue: HTTP ingest and sources hand events in
/// through it.
///
/// Both submits resolve once the events are *accepted*, which may take a
/// moment for a durable queue (an fsync shared by concurrent submits, a
/// JetStream acknowledgement): hence futures, which the memory queue
/// resolves at once.
pub trait Submitter: Send + Sync {
    /// Accepts all of `events` or none of them, without waiting for room
    /// (HTTP: a full queue is a 503, not a wait).
    ///
    /// Errors: [`SubmitError::Full`] (no room now), [`SubmitError::TooLarge`]
    /// (more events than the queue ever holds), [`SubmitError::Closed`].
    fn try_submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>>;

    /// Accepts all of `events`, waiting for room: for sources that can
    /// pause (their backpressure). Errors as for [`Submitter::try_submit`],
    /// except `Full`.
    fn submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>>;

    /// Events accepted and not yet handled.
    fn depth(&self) -> usize;

    /// The most events accepted and not yet handled at once (disk queue:
    /// held decoded in memory at once; more wait on disk).
    fn capacity(&self) -> usize;

    /// Whether *accepted* means the events survive `kill -9` (disk: true;
    /// memory: false). A producer that can resend (a tail source) may then
    /// move on once a submit is accepted rather than wait until handled.
    fn durable(&self) -> bool;
}

/// One event a worker took from a queue, and the queue's token for it.
pub struct Delivery<T> {
    pub event: Event,
    /// Whether whoever waits for the event wants a detailed report
    /// ([`Ack::Report`]); without, building the report costs nothing.
    pub detailed: bool,
    /// Given back to [`Queue::handled`] once the event is handled.
    pub token: T,
}

/// Why [`Queue::try_recv`] handed out nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDelivery {
    /// Nothing queued right now.
    Empty,
    /// Closed and drained: the worker stops.
    Closed,
}

/// The workers' side of a queue.
pub trait Queue: Submitter {
    /// How this queue recognises a delivery when it is given back.
    type Token: Send;

    /// The next event, waiting for one; `None` once the queue is closed and
    /// everything accepted has been handed out.
    fn recv(&self) -> Option<Delivery<Self::Token>>;

    /// The next event if one is queued now.
    fn try_recv(&self) -> Result<Delivery<Self::Token>, NoDelivery>;

    /// Whether nothing is queued right now (a worker then flushes and
    /// acknowledges what it has done rather than take more).
    fn is_empty(&self) -> bool;

    /// These events are handled (sinks and dead letters flushed): they
    /// leave the queue, then their producers are told, with each report.
    fn handled(&self, done: &mut Vec<(Self::Token, EventReport)>);

    /// Stops accepting; what was accepted is still handed out.
    fn close(&self);

    /// Worker `worker` (0-based, below the number of workers) starts
    /// running the handlers of this delivery. A durable queue notes it
    /// without a syscall, so that an event whose handling crashes the
    /// daemon is counted (`[queue] max_deliveries`); the memory queue
    /// does nothing.
    fn running(&self, _worker: usize, _token: &Self::Token) {}

    /// Worker `worker` finished running handlers (see [`Queue::running`]).
    fn idle(&self, _worker: usize) {}
}

/// What a submit returns once its events are accepted: per event, in
/// order, a [`Handled`] when one was asked for ([`Ack::Handled`] or
/// [`Ack::Report`]); none for [`Ack::Accepted`].
#[derive(Debug, Default)]
pub struct Receipt {
    pub handled: Vec<Handled>,
}

/// Resolves with the event's report once it is handled; with
/// [`Dropped`] if the queue dropped it unhandled (a worker died).
#[derive(Debug)]
pub struct Handled(oneshot::Receiver<EventReport>);

/// The event was dropped without being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event was dropped without being handled (a worker stopped)")]
pub struct Dropped;

/// The queue's end of a [`Handled`].
#[derive(Debug)]
pub struct Notifier(oneshot::Sender<EventReport>);

impl Handled {
    /// A waiter and the notifier a queue keeps with the event.
    pub fn pair() -> (Notifier, Handled) {
        let (tx, rx) = oneshot::channel();
        (Notifier(tx), Handled(rx))
    }
}

impl Notifier {
    /// Tells the waiter; a waiter that went away is no error.
    pub fn notify(self, report: EventReport) {
        let _ = self.0.send(report);
    }
}

impl Future for Handled {
    type Output = Result<EventReport, Dropped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(|_| Dropped)
    }
}
