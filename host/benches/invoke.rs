//! Per-invocation cost of the sandbox.
//!
//! Cases (criterion names):
//! - `invoke/trivial/{fresh,reused}`: a WAT handler that returns at once;
//!   fresh is a new store and instance per call (instantiate from the
//!   prepared instance, alloc, copy the event in, handle), reused calls a
//!   kept instance again with fuel and deadline reset.
//! - `invoke/reshape/{fresh,reused}`: the `reshape` plugin (Rust, built by
//!   `make plugins` into plugins/dist/reshape.wasm): parses the envelope and
//!   emits a reshaped event, which the host validates as it does every emit.
//! - `invoke/reshape/native`: the same reshaping code (`reshape.rs`) compiled
//!   into this process and called directly: the wasm/native ratio is the
//!   price of the sandbox.
//!
//! `cargo bench -p switchyard --bench invoke` prints criterion's estimates,
//! then one JSON line per case with percentiles over individually timed
//! calls (what `bench/suite.sh` collects).

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use switchyard::config::{Instance, Limits, PluginSettings};
use switchyard::event::Event;
use switchyard::runtime::{Plugin, Runtime, Warm};

#[path = "../../plugins/rust/reshape/src/reshape.rs"]
mod reshape;

const TRIVIAL: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0)))"#;

fn event_json() -> Vec<u8> {
    let v = serde_json::json!({"name": "deals.DealClick", "version": "1.2",
        "meta": {"host": "web-3"}, "data": {"deal_id": 7, "user_id": 42}});
    Event::from_input(v, "http").unwrap().to_json()
}

fn load(rt: &Runtime, name: &str, bytes: &[u8], instance: Instance) -> Plugin {
    let settings = PluginSettings {
        limits: Limits {
            instance,
            ..Limits::default()
        },
        config: serde_json::json!({}),
    };
    Plugin::from_bytes(rt, name, name.as_ref(), bytes, settings).unwrap()
}

fn reshape_wasm() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/dist/reshape.wasm");
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; build the plugins first: make plugins"))
}

/// The native counterpart of one reshape invocation: the reshaping alone.
/// (The wasm cases also include the host's parse and validation of the
/// emitted JSON, which a native handler would not need.)
fn native_reshape(event: &[u8]) -> Vec<u8> {
    reshape::reshape(event).expect("the sample is a click")
}

/// Times `n` calls one by one and prints a JSON line with percentiles.
fn percentiles(case: &str, mut call: impl FnMut()) {
    const N: usize = 100_000;
    for _ in 0..N / 10 {
        call();
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        call();
        samples.push(t.elapsed());
    }
    samples.sort();
    let us = |q: f64| samples[((N as f64 * q) as usize).min(N - 1)].as_secs_f64() * 1e6;
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e6 / N as f64;
    println!(
        "{}",
        serde_json::json!({"bench": "invoke", "case": case, "calls": N,
            "p50_us": us(0.50), "p90_us": us(0.90), "p99_us": us(0.99), "p999_us": us(0.999), "mean_us": mean})
    );
}

fn main() {
    let rt = Runtime::new(1).unwrap();
    let event = event_json();
    let reshape_bytes = reshape_wasm();
    let cases: Vec<(&str, Option<Plugin>)> = vec![
        (
            "trivial/fresh",
            Some(load(&rt, "trivial", TRIVIAL.as_bytes(), Instance::Fresh)),
        ),
        (
            "trivial/reused",
            Some(load(&rt, "trivial", TRIVIAL.as_bytes(), Instance::Reuse)),
        ),
        (
            "reshape/fresh",
            Some(load(&rt, "reshape", &reshape_bytes, Instance::Fresh)),
        ),
        (
            "reshape/reused",
            Some(load(&rt, "reshape", &reshape_bytes, Instance::Reuse)),
        ),
        ("reshape/native", None),
    ];
    let mut warm = Warm::default();
    for (_, plugin) in &cases {
        if let Some(p) = plugin {
            let inv = p.invoke_in(&mut warm, &event);
            assert!(inv.outcome.is_ok(), "{}: {:?}", p.name, inv.outcome);
        }
    }
    let mut c = Criterion::default().configure_from_args();
    for (case, plugin) in &cases {
        c.bench_function(&format!("invoke/{case}"), |b| match plugin {
            Some(p) => b.iter(|| p.invoke_in(&mut warm, black_box(&event))),
            None => b.iter(|| native_reshape(black_box(&event))),
        });
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        for (case, plugin) in &cases {
            match plugin {
                Some(p) => percentiles(case, || {
                    black_box(p.invoke_in(&mut warm, black_box(&event)));
                }),
                None => percentiles(case, || {
                    black_box(native_reshape(black_box(&event)));
                }),
            }
        }
    }
}
