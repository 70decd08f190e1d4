//! Event sources besides HTTP ingest. Each runs on its own thread, submits
//! through the dispatcher (waiting for room: its backpressure) and is
//! stopped before the dispatcher closes, so that what it submitted is
//! handled and its position saved.

pub mod tail;
