//! The memory queue: today's queue behind the [`Queue`] seam. A bounded
//! count of places (a semaphore) in front of an unbounded channel; a place
//! is taken when an event is accepted and given back once it is handled,
//! so `capacity` bounds the events accepted and not yet handled, wherever
//! they are. What it holds is lost if the process dies (issue 12 adds a
//! disk queue for that).

use std::sync::RwLock;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::{Semaphore, TryAcquireError};

use super::queue::{
    Ack, Delivery, Handled, NoDelivery, Notifier, Queue, Receipt, SubmitError, Submitter, Waiting,
};
use super::report::EventReport;
use crate::event::Event;

/// One accepted event in the channel.
struct Item {
    event: Event,
    detailed: bool,
    /// Who waits for the event to be handled, if anyone.
    notify: Option<Notifier>,
}

pub struct MemoryQueue {
    capacity: usize,
    /// Free places: `capacity` minus the events accepted and not handled.
    permits: Semaphore,
    /// `None` once closed: workers drain what is queued and stop.
    tx: RwLock<Option<Sender<Item>>>,
    rx: Receiver<Item>,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` events accepted and not handled.
    pub fn new(capacity: usize) -> MemoryQueue {
        let (tx, rx) = crossbeam_channel::unbounded();
        MemoryQueue {
            capacity,
            permits: Semaphore::new(capacity),
            tx: RwLock::new(Some(tx)),
            rx,
        }
    }

    fn too_large(&self, len: usize) -> SubmitError {
        SubmitError::TooLarge {
            len,
            capacity: self.capacity,
        }
    }

    /// Puts events whose places are taken into the channel.
    fn send(&self, events: Vec<Event>, ack: Ack) -> Result<Receipt, SubmitError> {
        let n = events.len();
        let guard = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            self.permits.add_permits(n);
            return Err(SubmitError::Closed);
        };
        let mut receipt = Receipt::default();
        if ack != Ack::Accepted {
            receipt.handled.reserve(n);
        }
        for event in events {
            let notify = match ack {
                Ack::Accepted => None,
                Ack::Handled | Ack::Report => {
                    let (notify, handled) = Handled::pair();
                    receipt.handled.push(handled);
                    Some(notify)
                }
            };
            let item = Item {
                event,
                detailed: ack == Ack::Report,
                notify,
            };
            tx.send(item)
                .expect("the queue holds a receiver for as long as it has a sender");
        }
        Ok(receipt)
    }
}

impl MemoryQueue {
    /// Takes places for all of `events` or none, then queues them.
    fn accept_now(&self, events: Vec<Event>, ack: Ack) -> Result<Receipt, SubmitError> {
        let len = events.len();
        if len > self.capacity {
            return Err(self.too_large(len));
        }
        let n = u32::try_from(len).map_err(|_| self.too_large(len))?;
        let permit = self.permits.try_acquire_many(n).map_err(|e| match e {
            TryAcquireError::Closed => SubmitError::Closed,
            TryAcquireError::NoPermits => SubmitError::Full {
                capacity: self.capacity,
            },
        })?;
        permit.forget();
        self.send(events, ack)
    }
}

impl Submitter for MemoryQueue {
    /// Accepted at once, or refused.
    fn try_submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(std::future::ready(self.accept_now(events, ack)))
    }

    fn submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(async move {
            let len = events.len();
            if len > self.capacity {
                return Err(self.too_large(len));
            }
            let n = u32::try_from(len).unwrap_or(u32::MAX);
            let permit = self
                .permits
                .acquire_many(n)
                .await
                .map_err(|_| SubmitError::Closed)?;
            permit.forget();
            self.send(events, ack)
        })
    }

    fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    /// What the channel holds dies with the process.
    fn durable(&self) -> bool {
        false
    }
}

impl Queue for MemoryQueue {
    type Token = Option<Notifier>;

    fn recv(&self) -> Option<Delivery<Self::Token>> {
        self.rx.recv().ok().map(delivery)
    }

    fn try_recv(&self) -> Result<Delivery<Self::Token>, NoDelivery> {
        match self.rx.try_recv() {
            Ok(item) => Ok(delivery(item)),
            Err(TryRecvError::Empty) => Err(NoDelivery::Empty),
            Err(TryRecvError::Disconnected) => Err(NoDelivery::Closed),
        }
    }

    fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    fn handled(&self, done: &mut Vec<(Self::Token, EventReport)>) {
        // The events leave the queue before anyone is told, so a producer
        // that reads the queue depth after its answer sees them gone.
        self.permits.add_permits(done.len());
        for (notify, report) in done.drain(..) {
            if let Some(notify) = notify {
                notify.notify(report);
            }
        }
    }

    fn close(&self) {
        self.permits.close();
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn delivery(item: Item) -> Delivery<Option<Notifier>> {
    Delivery {
        event: item.event,
        detailed: item.detailed,
        token: item.notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts now, as HTTP ingest does.
    fn try_submit(q: &MemoryQueue, events: Vec<Event>, ack: Ack) -> Result<Receipt, SubmitError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(q.try_submit(events, ack))
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event::from_input(serde_json::json!({"name": format!("a.E{i}")}), "test").unwrap())
            .collect()
    }

    #[test]
    fn admission_is_all_or_nothing_and_places_return_once_handled() {
        let q = MemoryQueue::new(3);
        assert_eq!(
            try_submit(&q, events(4), Ack::Accepted).unwrap_err(),
            SubmitError::TooLarge { len: 4, capacity: 3 }
        );
        let receipt = try_submit(&q, events(2), Ack::Handled).unwrap();
        assert_eq!((receipt.handled.len(), q.depth()), (2, 2));
        assert_eq!(
            try_submit(&q, events(2), Ack::Accepted).unwrap_err(),
            SubmitError::Full { capacity: 3 }
        );
        let mut done = Vec::new();
        while let Ok(d) = q.try_recv() {
            assert!(!d.detailed);
            done.push((d.token, EventReport::bare()));
        }
        q.handled(&mut done);
        assert_eq!(q.depth(), 0);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for h in receipt.handled {
            assert!(rt.block_on(h).is_ok());
        }
    }

    #[test]
    fn a_closed_queue_refuses_and_hands_out_what_it_holds() {
        let q = MemoryQueue::new(4);
        let receipt = try_submit(&q, events(1), Ack::Report).unwrap();
        q.close();
        assert_eq!(
            try_submit(&q, events(1), Ack::Accepted).unwrap_err(),
            SubmitError::Closed
        );
        let d = q.recv().expect("the accepted event is still handed out");
        assert!(d.detailed);
        assert!(q.recv().is_none());
        // A token dropped unhandled tells its waiter so.
        drop(d);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for h in receipt.handled {
            assert_eq!(rt.block_on(h).unwrap_err(), super::super::queue::Dropped);
        }
    }
}
