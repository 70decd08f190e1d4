//! Per-invocation overhead: one handler call on a fresh instance (new
//! store, instantiate from the prepared instance, alloc, copy the event in,
//! handle), for a trivial handler.
//!
//! `cargo bench -p switchyard --bench invoke` prints criterion's estimate of
//! the median, then percentiles over 200,000 individually timed calls.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use switchyard::config::{Limits, PluginSettings};
use switchyard::envelope::Event;
use switchyard::runtime::{Plugin, Runtime};

const TRIVIAL: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0)))"#;

fn event_json() -> Vec<u8> {
    let v = serde_json::json!({"name": "deals.DealClick", "version": "1.2",
        "meta": {"host": "web-3"}, "data": {"deal_id": 7, "user_id": 42}});
    Event::from_input(v, "http").unwrap().to_json()
}

fn trivial_plugin(rt: &Runtime) -> Plugin {
    let settings = PluginSettings {
        limits: Limits::default(),
        config: serde_json::json!({}),
    };
    Plugin::from_bytes(
        rt,
        "trivial",
        "trivial.wat".as_ref(),
        TRIVIAL.as_bytes(),
        settings,
    )
    .unwrap()
}

fn percentiles(plugin: &Plugin, event: &[u8]) {
    const N: usize = 200_000;
    let mut samples: Vec<Duration> = Vec::with_capacity(N);
    for _ in 0..N / 10 {
        black_box(plugin.invoke(event));
    }
    for _ in 0..N {
        let t = Instant::now();
        let inv = plugin.invoke(black_box(event));
        samples.push(t.elapsed());
        assert!(inv.outcome.is_ok());
    }
    samples.sort();
    let at = |q: f64| samples[((N as f64 * q) as usize).min(N - 1)];
    let mean = samples.iter().sum::<Duration>() / N as u32;
    println!(
        "invoke/trivial/fresh_instance percentiles over {N} calls: p50 {:.2} us, p90 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, mean {:.2} us",
        at(0.50).as_secs_f64() * 1e6,
        at(0.90).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
    );
}

fn main() {
    let rt = Runtime::new(1).unwrap();
    let plugin = trivial_plugin(&rt);
    let event = event_json();
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("invoke/trivial/fresh_instance", |b| {
        b.iter(|| plugin.invoke(black_box(&event)))
    });
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        percentiles(&plugin, &event);
    }
}
