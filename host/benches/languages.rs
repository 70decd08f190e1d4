//! A trivial handler in each language the plugins are written in, against
//! the Rust one (issue 14): every `plugins/dist/conformance_<lang>.wasm`
//! that is built, on the same event (`conf.Other`, which each of them
//! decodes with its SDK and then ignores). For each language:
//!
//! - `first_load_ms`: compile, ABI checks and the trial instantiation of
//!   `Plugin::load` (what a daemon does for a plugin it has not seen; the
//!   load from the compile cache is timed through the daemon by
//!   `bench/languages.sh`);
//! - per-call p50/p99 on a reused instance and on a fresh one (a fresh
//!   instance also runs `_initialize`, for Go its runtime's start-up);
//! - `rss_per_instance_kib`: the process's resident memory grown by
//!   keeping `KEPT` started instances (one per worker's `Warm`), divided by
//!   `KEPT`: what each worker pays per kept instance of the plugin;
//! - `fuel_fresh` / `fuel_reused`: fuel of one call, for the profile.
//!
//! `cargo bench -p switchyard --bench languages` (after `make plugins`)
//! prints one JSON line per language; BENCHMARKS.md, "Handlers in Go (and
//! other languages)", records a run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard::config::{Instance, Limits, LoadLimits, PluginSettings};
use switchyard::event::Event;
use switchyard::runtime::{Plugin, Runtime, Warm};

/// Languages measured when their plugin is built, Rust first (the baseline).
const LANGS: [&str; 6] = ["rust", "go", "python", "js", "c", "zig"];
/// Instances kept at once to measure resident memory per instance.
const KEPT: usize = 16;

fn event_json() -> Vec<u8> {
    let v = serde_json::json!({"name": "conf.Other", "version": "1.2",
        "meta": {"host": "web-3"}, "data": {"deal_id": 7, "user_id": 42}});
    Event::from_input(v, "http").unwrap().to_json()
}

fn settings(instance: Instance) -> PluginSettings {
    PluginSettings {
        limits: Limits {
            instance,
            ..Limits::default()
        },
        config: serde_json::json!({}),
    }
}

fn load_limits() -> LoadLimits {
    LoadLimits {
        max_file_size: 64 << 20,
        compile_timeout: Duration::from_secs(600),
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// p50 and p99 in µs of `n` calls timed one by one, after `n / 10` warm-up calls.
fn percentiles(n: usize, mut call: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        call();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            call();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let us = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
    (us(0.50), us(0.99))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn measure(lang: &str, path: &Path, event: &[u8]) -> serde_json::Value {
    let name = format!("conformance_{lang}");
    let bytes = std::fs::metadata(path).unwrap().len();

    let rt = Runtime::new(2).unwrap();
    let t = Instant::now();
    let reused = Plugin::load(&rt, &name, path, settings(Instance::Reuse), load_limits())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let first_load = t.elapsed();

    let fresh = reused
        .with_settings(&rt, settings(Instance::Fresh))
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    let mut warm = Warm::default();
    let first = reused.invoke_in(&mut warm, event);
    assert!(first.outcome.is_ok(), "{name}: {:?}", first.outcome);
    let again = reused.invoke_in(&mut warm, event);
    let (reused_p50, reused_p99) = percentiles(20_000, || {
        let inv = reused.invoke_in(&mut warm, event);
        assert!(inv.outcome.is_ok());
    });
    let once = fresh.invoke(event);
    assert!(once.outcome.is_ok(), "{name}: {:?}", once.outcome);
    let (fresh_p50, fresh_p99) = percentiles(1_000, || {
        let inv = fresh.invoke(event);
        assert!(inv.outcome.is_ok());
    });

    let before = rss_kib();
    let mut kept: Vec<Warm> = (0..KEPT).map(|_| Warm::default()).collect();
    for w in &mut kept {
        assert!(reused.invoke_in(w, event).outcome.is_ok());
    }
    let rss_per_instance = (rss_kib().saturating_sub(before)) / KEPT as u64;

    serde_json::json!({"bench": "languages", "lang": lang, "plugin_bytes": bytes,
        "first_load_ms": ms(first_load),
        "reused_p50_us": reused_p50, "reused_p99_us": reused_p99,
        "fresh_p50_us": fresh_p50, "fresh_p99_us": fresh_p99,
        "rss_per_instance_kib": rss_per_instance,
        "fuel_fresh": once.fuel_used, "fuel_reused": again.fuel_used})
}

fn main() {
    let dist = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/dist"));
    let event = event_json();
    for lang in LANGS {
        let path = dist.join(format!("conformance_{lang}.wasm"));
        if !path.is_file() {
            eprintln!("{}: not built, skipped", path.display());
            continue;
        }
        println!("{}", measure(lang, &path, &event));
    }
}
