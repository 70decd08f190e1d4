//! What happened to an event and everything it caused: the body of a
//! `?wait=true` answer (its JSON shape is part of the HTTP API), and what a
//! tail checkpoint needs to know (`unwritten`).

use serde::Serialize;

use crate::event::Event;

/// What happened to an event and everything it caused.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub id: String,
    pub name: String,
    /// Routes that took the event.
    pub routes: Vec<String>,
    /// Each handler run (or not run) for this event and the events it emitted.
    pub handlers: Vec<HandlerResult>,
    /// Ids of events emitted (directly or further down) and routed.
    pub emitted: Vec<String>,
    /// A dead letter may not have reached the dead-letter log while this
    /// event was handled (it is then whole in the daemon's log): a durable
    /// producer (a tail checkpoint) must not pass the event (issue 17).
    #[serde(skip)]
    pub unwritten: bool,
}

/// One handler run (or not run) on an event.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerResult {
    /// The event the handler ran on: the reported one or one it caused.
    pub event: String,
    pub route: String,
    pub plugin: Option<String>,
    /// `ok`, a failure kind, or a dead-letter reason.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// The first 12 hex digits of the sha256 of the plugin version that ran,
    /// so a deploy can be followed event by event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
}

impl EventReport {
    /// An empty report: only ever waited on, never read, so it costs
    /// nothing to build.
    pub fn bare() -> EventReport {
        EventReport {
            id: String::new(),
            name: String::new(),
            routes: Vec::new(),
            handlers: Vec::new(),
            emitted: Vec::new(),
            unwritten: false,
        }
    }

    /// The report of `root`: detailed (its id and name filled in, to be
    /// filled further while it is handled) or bare.
    pub fn of(root: &Event, detailed: bool) -> EventReport {
        if !detailed {
            return EventReport::bare();
        }
        EventReport {
            id: root.id.clone(),
            name: root.name.clone(),
            ..EventReport::bare()
        }
    }
}
