//! The component executor on hand-written components (text format, no
//! toolchain): each behaviour of the world's contract and each way a run
//! can fail, with the failure kinds core modules have.

use std::time::{Duration, Instant};

use crate::config::{Instance, Limits, PluginSettings};
use crate::runtime::guest::PluginKind;
use crate::runtime::plugin::PluginError;
use crate::runtime::{FailureKind, Level, Plugin, Runtime, Warm};

/// A handler of the world, with a libc module (memory and `cabi_realloc`)
/// and a main module importing it. What `handle` does is told by the
/// event name's first letter: `t` traps, `l` loops, `m` grows memory
/// without end, `s` sleeps 5 s in `wasi:io/poll`, `f` returns `Err("handler
/// says no")`, `e` emits `a.Emitted` and logs the emit's result (0 ok);
/// anything else counts its calls in a global and logs the count.
/// `configure` refuses a config whose third byte is `r` (`{"refuse":…}`).
const HANDLER: &str = r#"(component $C
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $pl (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pl))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $p))
    (export "pollable" (type $p2 (eq $p)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p2))))))
  (import "switchyard:handler/types@1.0.0" (instance $types
    (type $ev (record (field "id" string) (field "name" string) (field "version" (option string))
      (field "source" string) (field "time" string) (field "meta" string) (field "data" string)))
    (export "event" (type (eq $ev)))))
  (alias export $types "event" (type $event))
  (import "switchyard:handler/host@1.0.0" (instance $host
    (type $lv (enum "trace" "debug" "info" "warn" "error"))
    (export "level" (type $level (eq $lv)))
    (type $ne (record (field "name" string) (field "data" string) (field "meta" (option string))
      (field "version" (option string))))
    (export "new-event" (type $new-event (eq $ne)))
    (type $ee (variant (case "malformed" string) (case "too-many") (case "too-large")))
    (export "emit-error" (type $emit-error (eq $ee)))
    (export "log" (func (param "level" $level) (param "message" string)))
    (export "emit" (func (param "event" $new-event) (result (result (error $emit-error)))))))
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 8192))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.const 1)
          (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)))))))
      (local.get $p)))
  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (import "host" "emit" (func $emit (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "wasi" "block" (func $block (param i32)))
    (global $n (mut i32) (i32.const 0))
    (data (i32.const 0) "0123456789")
    (data (i32.const 16) "refused config")
    (data (i32.const 32) "handler says no")
    (data (i32.const 48) "a.Emitted")
    (data (i32.const 64) "{\"k\":1}")
    (func $ok (result i32) (i32.store8 (i32.const 128) (i32.const 0)) (i32.const 128))
    (func $err (param i32 i32) (result i32)
      (i32.store8 (i32.const 128) (i32.const 1))
      (i32.store (i32.const 132) (local.get 0))
      (i32.store (i32.const 136) (local.get 1))
      (i32.const 128))
    (func (export "configure") (param $p i32) (param $l i32) (result i32)
      (if (i32.gt_u (local.get $l) (i32.const 2))
        (then (if (i32.eq (i32.load8_u offset=2 (local.get $p)) (i32.const 114))
          (then (return (call $err (i32.const 16) (i32.const 14)))))))
      (call $ok))
    (func (export "handle")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $c i32)
      (local.set $c (i32.load8_u (local.get 2)))
      (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))
      (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $spin (br $spin))))
      (if (i32.eq (local.get $c) (i32.const 109))
        (then (loop $grow (drop (memory.grow (i32.const 16))) (br $grow))))
      (if (i32.eq (local.get $c) (i32.const 115))
        (then (call $block (call $subscribe (i64.const 5000000000)))))
      (if (i32.eq (local.get $c) (i32.const 102)) (then (return (call $err (i32.const 32) (i32.const 15)))))
      (if (i32.eq (local.get $c) (i32.const 101))
        (then
          (call $emit (i32.const 48) (i32.const 9) (i32.const 64) (i32.const 7)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 144))
          (call $log (i32.const 2) (i32.load8_u (i32.const 144)) (i32.const 1))
          (return (call $ok))))
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (call $log (i32.const 2) (global.get $n) (i32.const 1))
      (call $ok)))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (alias export $host "log" (func $host-log))
  (alias export $host "emit" (func $host-emit))
  (alias export $clock "subscribe-duration" (func $subscribe))
  (alias export $poll "[method]pollable.block" (func $block))
  (core func $log (canon lower (func $host-log) (memory $mem)))
  (core func $emit (canon lower (func $host-emit) (memory $mem) (realloc $realloc)))
  (core func $subscribe-core (canon lower (func $subscribe)))
  (core func $block-core (canon lower (func $block)))
  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "host" (instance (export "log" (func $log)) (export "emit" (func $emit))))
    (with "wasi" (instance (export "subscribe" (func $subscribe-core)) (export "block" (func $block-core))))))
  (func $configure (param "config" string) (result (result (error string)))
    (canon lift (core func $main "configure") (memory $mem) (realloc $realloc)))
  (export "configure" (func $configure))
  (func $handle (param "event" $event) (result (result (error string)))
    (canon lift (core func $main "handle") (memory $mem) (realloc $realloc)))
  (export "handle" (func $handle)))"#;

fn settings(limits: Limits, config: serde_json::Value) -> PluginSettings {
    PluginSettings { limits, config }
}

fn load(rt: &Runtime, limits: Limits) -> Plugin {
    Plugin::from_bytes(
        rt,
        "h",
        "h.wat".as_ref(),
        HANDLER.as_bytes(),
        settings(limits, serde_json::json!({})),
    )
    .unwrap()
}

/// The envelope the daemon hands a guest, for an event named `name`.
fn event(name: &str) -> Vec<u8> {
    serde_json::json!({"id": "01J", "name": name, "source": "test", "time": "2026-01-01T00:00:00Z",
        "meta": {}, "data": {"x": 1}})
    .to_string()
    .into_bytes()
}

fn logged(inv: &crate::runtime::Invocation) -> String {
    inv.logs.iter().map(|l| l.message.as_str()).collect()
}

#[test]
fn a_component_is_its_own_kind_logs_emits_and_fails_with_its_message() {
    let rt = Runtime::new(1).unwrap();
    let p = load(&rt, Limits::default());
    assert_eq!((p.kind, p.kind.as_str()), (PluginKind::Component, "component"));
    let inv = p.invoke(&event("a.B"));
    assert_eq!(inv.outcome, Ok(()));
    assert_eq!(
        (inv.logs[0].level, inv.logs[0].message.as_str()),
        (Level::Info, "1")
    );
    let inv = p.invoke(&event("e.Emit"));
    assert_eq!(inv.outcome, Ok(()));
    assert_eq!(logged(&inv), "0", "the emit succeeded");
    assert_eq!(inv.emitted.len(), 1);
    assert_eq!(inv.emitted[0].name, "a.Emitted");
    assert_eq!(inv.emitted[0].data, serde_json::json!({"k": 1}));
    let f = p.invoke(&event("f.Fail")).outcome.unwrap_err();
    assert_eq!(
        (f.kind, f.message.as_str()),
        (FailureKind::HandlerError, "handler says no")
    );
}

#[test]
fn traps_budgets_and_the_memory_cap_end_a_call_as_for_a_module() {
    let rt = Runtime::new(1).unwrap();
    let kind = |limits: Limits, name: &str| load(&rt, limits).invoke(&event(name)).outcome.unwrap_err().kind;
    assert_eq!(kind(Limits::default(), "t.Trap"), FailureKind::Trap);
    let short = Limits {
        timeout: Duration::from_millis(100),
        fuel: u64::MAX / 2,
        ..Limits::default()
    };
    assert_eq!(kind(short, "l.Loop"), FailureKind::Timeout);
    let little_fuel = Limits {
        fuel: 100_000,
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    assert_eq!(kind(little_fuel, "l.Loop"), FailureKind::OutOfFuel);
    let small = Limits {
        memory: 4 << 20,
        ..Limits::default()
    };
    assert_eq!(kind(small, "m.Grow"), FailureKind::MemoryLimit);
}

#[test]
fn a_wasi_wait_past_the_deadline_is_a_timeout_at_the_deadline() {
    let rt = Runtime::new(1).unwrap();
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let f = load(&rt, limits).invoke(&event("s.Sleep")).outcome.unwrap_err();
    assert_eq!(f.kind, FailureKind::Timeout, "{f}");
    assert!(f.message.contains("pollable.block"), "{f}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_reused_instance_keeps_state_until_a_failure_discards_it() {
    let rt = Runtime::new(1).unwrap();
    let p = load(
        &rt,
        Limits {
            instance: Instance::Reuse,
            ..Limits::default()
        },
    );
    let mut warm = Warm::default();
    let mut seen = String::new();
    for name in ["a.B", "a.B", "t.Trap", "a.B", "a.B"] {
        let inv = p.invoke_in(&mut warm, &event(name));
        assert_eq!(inv.outcome.is_ok(), name == "a.B", "{name}: {:?}", inv.outcome);
        seen += &logged(&inv);
    }
    assert_eq!(seen, "1212", "the trap discarded the instance that had counted 2");
}

#[test]
fn a_config_refused_by_configure_fails_the_load() {
    let rt = Runtime::new(1).unwrap();
    let config = serde_json::json!({"refuse": true});
    let err = Plugin::from_bytes(
        &rt,
        "h",
        "h.wat".as_ref(),
        HANDLER.as_bytes(),
        settings(Limits::default(), config),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, PluginError::Instantiate { .. }), "{err}");
    assert!(
        err.to_string().contains("configure failed: refused config"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_world_is_refused_naming_what_is_missing() {
    let rt = Runtime::new(1).unwrap();
    let load = |wat: &str| {
        Plugin::from_bytes(
            &rt,
            "x",
            "x.wat".as_ref(),
            wat.as_bytes(),
            settings(Limits::default(), serde_json::json!({})),
        )
        .err()
        .expect("refused")
        .to_string()
    };
    let err = load(r#"(component (import "acme:thing/api" (instance)))"#);
    assert_eq!(
        err,
        "plugin \"x\" (x.wat): does not target the world `switchyard:handler/handler@1.0.0`: \
         missing export `configure`: func(config: string) -> result<_, string>; \
         missing export `handle`: func(event: event) -> result<_, string>; \
         imports `acme:thing/api`, which the host does not provide (only `switchyard:handler/host` and WASI 0.2)"
    );
    // A WASI interface the host does not link: named by the linker.
    let http = HANDLER.replacen(
        "(import \"wasi:io/poll@0.2.0\"",
        "(import \"wasi:http/types@0.2.0\" (instance (export \"x\" (func))))\n(import \"wasi:io/poll@0.2.0\"",
        1,
    );
    let err = load(&http);
    assert!(err.contains("wasi:http/types@0.2.0"), "{err}");
    // An export of another type: `handle` exported as `configure` too.
    let mistyped = HANDLER
        .replace("(export \"configure\" (func $configure))", "")
        .replace(
            "(export \"handle\" (func $handle))",
            "(export \"handle\" (func $handle)) (export \"configure\" (func $handle))",
        );
    let err = load(&mistyped);
    assert!(err.contains("configure"), "{err}");
}
