//! The JSON reshaping that the benchmarks run both inside the sandbox (the
//! `reshape` plugin) and as native code in the host's process
//! (`host/benches/invoke.rs` includes this file), so the two differ only in
//! where the code runs.
//!
//! In: an event envelope whose `data` has `deal_id` and `user_id`.
//! Out: `{"name":"deals.ClickReshaped","data":{...},"meta":{...}}`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(default, borrow)]
    meta: Meta<'a>,
    data: Click,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Click {
    deal_id: u64,
    user_id: u64,
}

#[derive(Serialize)]
struct Reshaped<'a> {
    name: &'static str,
    data: Out<'a>,
    meta: OutMeta<'a>,
}

#[derive(Serialize)]
struct Out<'a> {
    deal: u64,
    user: u64,
    clicked_at: &'a str,
    host: Option<&'a str>,
}

#[derive(Serialize)]
struct OutMeta<'a> {
    reshaped_from: &'a str,
    original_name: &'a str,
}

/// Reads one envelope and returns the JSON of the event to emit.
pub fn reshape(event_json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let ev: Envelope<'_> = serde_json::from_slice(event_json)?;
    serde_json::to_vec(&Reshaped {
        name: "deals.ClickReshaped",
        data: Out {
            deal: ev.data.deal_id,
            user: ev.data.user_id,
            clicked_at: &ev.time,
            host: ev.meta.host.as_deref(),
        },
        meta: OutMeta {
            reshaped_from: &ev.id,
            original_name: &ev.name,
        },
    })
}
