//! What a Go reactor (plugins/go/conformance, built by plugins/build.sh
//! with -buildmode=c-shared) needs from the runtime: its `_initialize` (Go's
//! runtime start-up) runs under the plugin's fuel, its instances are kept
//! and reused (its memory stays under half the cap), a panic is logged and
//! traps, WASI grants it nothing. One compile serves every case: the module is 4 MB.

use std::path::PathBuf;
use std::time::Duration;

use switchyard::config::{Limits, LoadLimits, PluginSettings};
use switchyard::event::Event;
use switchyard::runtime::{FailureKind, Level, Plugin, Runtime, Warm};

fn event(name: &str) -> Vec<u8> {
    Event::from_input(serde_json::json!({"name": name, "data": {"n": 1}}), "http")
        .unwrap()
        .to_json()
}

fn settings(limits: Limits) -> PluginSettings {
    PluginSettings {
        limits,
        config: serde_json::json!({}),
    }
}

#[test]
fn a_go_reactor_starts_under_its_fuel_is_reused_sees_nothing_granted_and_traps_on_panic() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/conformance_go.wasm");
    assert!(
        path.is_file(),
        "{} is missing: plugins/build.sh go",
        path.display()
    );
    let rt = Runtime::new(1).unwrap();
    let load = LoadLimits {
        compile_timeout: Duration::from_secs(300),
        ..LoadLimits::default()
    };
    let p = Plugin::load(&rt, "conformance_go", &path, settings(Limits::default()), load).unwrap();

    // Go's start-up (`_initialize`: the runtime and the init functions)
    // runs under the plugin's fuel: a fresh instance's call counts it.
    let mut warm = Warm::default();
    let fresh = p.invoke(&event("conf.Other"));
    assert!(fresh.outcome.is_ok(), "{:?}", fresh.outcome);
    for _ in 0..300 {
        let inv = p.invoke_in(&mut warm, &event("conf.Emit"));
        assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
        assert_eq!(inv.emitted.len(), 1);
    }
    let last = p.invoke_in(&mut warm, &event("conf.Other"));
    assert!(
        last.fuel_used * 5 < fresh.fuel_used,
        "a reused call: {} fuel, a fresh one (with _initialize): {}",
        last.fuel_used,
        fresh.fuel_used
    );
    // A kept instance is reused (Go's memory stays under half the cap):
    // its calls take a fraction of a fresh instance's.
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let fresh_time = median((0..9).map(|_| p.invoke(&event("conf.Other")).elapsed).collect());
    let reused_time = median(
        (0..9)
            .map(|_| p.invoke_in(&mut warm, &event("conf.Other")).elapsed)
            .collect(),
    );
    assert!(
        reused_time * 4 < fresh_time,
        "reused {reused_time:?}, fresh {fresh_time:?}"
    );

    // A panic: logged at error with its stack, then a trap; the next event
    // gets a new instance (with the start-up again).
    let panic = p.invoke_in(&mut warm, &event("conf.Panic"));
    let failure = panic.outcome.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap, "{failure}");
    let line = panic
        .logs
        .iter()
        .find(|l| l.level == Level::Error)
        .expect("an error line");
    assert!(
        line.message
            .starts_with("panic: conformance go panicked on purpose")
            && line.message.contains("main.handle"),
        "{}",
        line.message
    );
    let after = p.invoke_in(&mut warm, &event("conf.Other"));
    assert!(after.outcome.is_ok(), "{:?}", after.outcome);
    assert!(
        after.elapsed > reused_time * 4,
        "a new instance (with Go's start-up) after the trap: {:?}",
        after.elapsed
    );

    // WASI is linked with nothing granted: no files (no preopens), no
    // environment, the plugin's name as the only argument; what Go writes
    // on stdout is an info line.
    let sandbox = p.invoke_in(&mut warm, &event("conf.Sandbox"));
    assert!(sandbox.outcome.is_ok(), "{:?}", sandbox.outcome);
    let lines: Vec<&str> = sandbox.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        lines,
        [
            "open: open /etc/passwd: Bad file number; environ: 0; args: [\"conformance_go\"]",
            "conformance go on stdout"
        ]
    );
    assert!(sandbox.logs.iter().all(|l| l.level == Level::Info));

    // `_initialize` runs under the plugin's fuel, at load (the trial
    // instance) as for every instance: too little fuel refuses the plugin.
    let starved = Limits {
        fuel: (fresh.fuel_used - last.fuel_used) / 2,
        ..Limits::default()
    };
    let refused = p.with_settings(&rt, settings(starved)).err().expect("refused");
    assert!(refused.to_string().contains("out_of_fuel"), "{refused}");
}
