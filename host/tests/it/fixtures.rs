//! Plugins as inline WAT, one per exact behaviour, and config pieces.

/// Config: a route that writes every `seen.*` event (what the fixtures
/// emit) to the sink file `seen.ndjson`. A macro so that `concat!` can
/// join it to a test's own routes.
macro_rules! seen_route {
    () => {
        r#"
[[route]]
name = "seen"
match = { name = "seen.*" }
sinks = ["seen"]

[sink.seen]
type = "file"
path = "seen.ndjson"
"#
    };
}

/// A handler module with a bump allocator at 1024, the three imports, and
/// `data` (constant strings below 1024) and `body` (of `switchyard_handle`).
pub fn handler(data: &str, body: &str, extra: &str) -> String {
    format!(
        r#"(module
  (import "switchyard" "log" (func $log (param i32 i32 i32)))
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (import "switchyard" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  {data}
  (func (export "switchyard_alloc") (param $len i32) (result i32)
    (local $need i32)
    (local.set $need (i32.shr_u (i32.add (local.get $len) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $need) (memory.size))))))
    (i32.const 1024))
  (func (export "switchyard_handle") (param $ptr i32) (param $len i32) (result i32)
    {body})
  {extra}
)"#
    )
}

fn wat_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Emits `{"name":"<event>"}` and succeeds.
pub fn emitter(event: &str) -> String {
    let json = format!(r#"{{"name":"{event}"}}"#);
    handler(
        &format!(r#"(data (i32.const 0) "{}")"#, wat_string(&json)),
        &format!(
            "(drop (call $emit (i32.const 0) (i32.const {}))) (i32.const 0)",
            json.len()
        ),
        "",
    )
}

/// Logs the whole event at info level and succeeds.
pub fn logger() -> String {
    handler(
        "",
        "(call $log (i32.const 2) (local.get $ptr) (local.get $len)) (i32.const 0)",
        "",
    )
}

pub fn trap() -> String {
    handler("", "unreachable", "")
}

/// Loops forever: runs out of fuel, or past its deadline when fuel is ample.
pub fn endless_loop() -> String {
    handler("", "(loop br 0) (i32.const 0)", "")
}

/// Grows memory a page at a time until refused.
pub fn memory_hog() -> String {
    handler(
        "",
        "(loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i32.const 0)",
        "",
    )
}

pub fn deep_recursion() -> String {
    handler(
        "",
        "(call $rec (i32.const 0))",
        "(func $rec (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))",
    )
}

pub const FAIL_MESSAGE: &str = "deal 7 is gone";

/// Fails with a message.
pub fn failing() -> String {
    handler(
        &format!(r#"(data (i32.const 0) "{FAIL_MESSAGE}")"#),
        &format!(
            "(call $fail (i32.const 0) (i32.const {})) (i32.const 1)",
            FAIL_MESSAGE.len()
        ),
        "",
    )
}

/// Calls `fail` with a message of `len` bytes of `y` (≤ 120,000; the host
/// keeps 16 KiB of it) and fails: guest text in the failure path.
pub fn big_failure(len: usize) -> String {
    handler(
        "",
        &format!("(call $fail (i32.const 65536) (i32.const {len})) (i32.const 1)"),
        &format!(r#"(data (i32.const 65536) "{}")"#, "y".repeat(len)),
    )
    .replace(
        r#"(memory (export "memory") 1)"#,
        r#"(memory (export "memory") 3)"#,
    )
}

/// Hands the host a pointer far outside its memory.
pub fn bad_pointer() -> String {
    handler(
        "",
        "(call $log (i32.const 2) (i32.const -16) (i32.const 100)) (i32.const 0)",
        "",
    )
}

/// Burns roughly `iterations` loop turns, then succeeds: a slow handler.
pub fn slow(iterations: u32) -> String {
    handler(
        "",
        &format!(
            "(local $i i32) (local.set $i (i32.const {iterations}))
             (loop (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if 0 (local.get $i)))
             (i32.const 0)"
        ),
        "",
    )
}

/// Counts its calls in a global and traps on every third call of one
/// instance: with `instance = "reuse"` calls 3, 6, ... trap; with fresh
/// instances it never reaches 3.
pub fn third_call_traps() -> String {
    handler(
        "",
        "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.eq (global.get $calls) (i32.const 3)) (then unreachable))
    (i32.const 0)",
        "(global $calls (mut i32) (i32.const 0))",
    )
}

/// A handler that sleeps `ns` nanoseconds in WASI `poll_oneoff` (a relative
/// monotonic clock subscription, what `std::thread::sleep` compiles to),
/// `times` times in a row, then succeeds. `start` and `initialize` say
/// whether the start function and `_initialize` sleep the same way.
pub fn sleeper(ns: u64, times: u32, start: bool, initialize: bool) -> String {
    let start = if start { "(start $once)" } else { "" };
    let initialize = if initialize {
        r#"(func (export "_initialize") (call $once))"#
    } else {
        ""
    };
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $sleep (param $ns i64) (param $clock i32) (param $flags i32)
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (local.get $clock))
    (i64.store (i32.const 280) (local.get $ns))
    (i32.store16 (i32.const 296) (local.get $flags))
    (if (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360))
      (then unreachable)))
  (func $once (call $sleep (i64.const {ns}) (i32.const 1) (i32.const 0)))
  {start}
  {initialize}
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (local $i i32)
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
      (call $once)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    (i32.const 0)))"#
    )
}

/// Emits `{"name":"<event>"}` `n` times per call: routed to itself, a
/// fan-out of `n` per level.
pub fn fanout(event: &str, n: u32) -> String {
    let json = format!(r#"{{"name":"{event}"}}"#);
    handler(
        &format!(r#"(data (i32.const 0) "{}")"#, wat_string(&json)),
        &format!(
            "(local $i i32)
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
      (drop (call $emit (i32.const 0) (i32.const {len})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    (i32.const 0)",
            len = json.len()
        ),
        "",
    )
}

/// Like [`fanout`], each emitted event `bytes` long (its `data` a string
/// of `x`, 100 ≤ `bytes` ≤ 120,000, placed above where the event is passed): the byte-amplifying fan-out of
/// issue 16 (10 × 104,000 bytes is just under `max_emit_bytes`).
pub fn big_fanout(event: &str, n: u32, bytes: usize) -> String {
    let head = format!(r#"{{"name":"{event}","data":""#);
    let json = format!(r#"{head}{}"}}"#, "x".repeat(bytes - head.len() - 2));
    assert_eq!(json.len(), bytes);
    handler(
        "",
        &format!(
            "(local $i i32)
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
      (drop (call $emit (i32.const 196608) (i32.const {bytes})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    (i32.const 0)"
        ),
        &format!(r#"(data (i32.const 196608) "{}")"#, wat_string(&json)),
    )
    .replace(
        r#"(memory (export "memory") 1)"#,
        r#"(memory (export "memory") 5)"#,
    )
}

/// Logs one line of `len` bytes (`len` ≤ 32 KiB) of `x` at info level per
/// call and succeeds.
pub fn big_logger(len: usize) -> String {
    handler(
        "",
        &format!("(call $log (i32.const 2) (i32.const 32768) (i32.const {len})) (i32.const 0)"),
        &format!(r#"(data (i32.const 32768) "{}")"#, "x".repeat(len)),
    )
}

/// A valid handler module with `n` extra functions of about 60 bytes of
/// code each, as wasm bytes: 200,000 of them make the 12.9 MB module of
/// issue 16, which took 25–43 s to compile.
pub fn many_functions(n: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut wat = String::with_capacity(n * 200);
    wat.push_str(
        r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0))
"#,
    );
    for i in 0..n {
        let _ = writeln!(
            wat,
            "  (func (param i32) (result i32) (local i32)
    (local.set 1 (i32.mul (local.get 0) (i32.const {i})))
    (local.set 1 (i32.xor (local.get 1) (i32.const 0x5bd1e995)))
    (local.set 1 (i32.add (local.get 1) (i32.rotl (local.get 0) (i32.const 13))))
    (local.set 1 (i32.mul (local.get 1) (i32.const 0x27d4eb2d)))
    (i32.add (local.get 1) (i32.shr_u (local.get 1) (i32.const 15))))"
        );
    }
    wat.push_str(")\n");
    wat::parse_str(&wat).expect("the generated module is valid")
}

/// A valid handler module (trivial `switchyard_alloc` and
/// `switchyard_handle`) with one more function whose body repeats `local.get
/// 0; local.get 1; i32.add; local.set 1; local.get 1; local.get 0; i32.mul;
/// local.set 0` (14 bytes) `reps` times, as wasm bytes; `seed` makes them
/// unique. Issue 16's fairness finding: 540,000 repetitions (7.6 MB) took
/// 8 s and 786 MB to compile; about 1 s per MB.
pub fn one_big_body(reps: usize, seed: u32) -> Vec<u8> {
    fn leb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn sized(content: &[u8], out: &mut Vec<u8>) {
        leb(content.len() as u64, out);
        out.extend_from_slice(content);
    }
    fn section(id: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        sized(content, out);
    }
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Types: (i32) -> i32, (i32 i32) -> i32.
    section(
        1,
        &[2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 1, 0x7f],
        &mut m,
    );
    section(3, &[3, 0, 1, 1], &mut m);
    section(5, &[1, 0, 1], &mut m);
    let mut exports = vec![3];
    for (name, kind, index) in [
        ("memory", 2, 0),
        ("switchyard_alloc", 0, 0),
        ("switchyard_handle", 0, 1),
    ] {
        sized(name.as_bytes(), &mut exports);
        exports.extend_from_slice(&[kind, index]);
    }
    section(7, &exports, &mut m);
    let mut big = vec![0, 0x41];
    leb(seed as u64, &mut big);
    big.push(0x1a);
    let step = [0x20, 0, 0x20, 1, 0x6a, 0x21, 1, 0x20, 1, 0x20, 0, 0x6c, 0x21, 0];
    big.reserve(reps * step.len() + 3);
    for _ in 0..reps {
        big.extend_from_slice(&step);
    }
    big.extend_from_slice(&[0x20, 0, 0x0b]);
    let mut code = vec![3];
    sized(&[0, 0x41, 0x80, 0x08, 0x0b], &mut code);
    sized(&[0, 0x41, 0, 0x0b], &mut code);
    sized(&big, &mut code);
    section(10, &code, &mut m);
    m
}

/// [`logger`] padded past `len` bytes of WAT with a passive data segment:
/// a file as big as a slow module that compiles in milliseconds.
pub fn padded_logger(len: usize) -> String {
    handler(
        "",
        "(call $log (i32.const 2) (local.get $ptr) (local.get $len)) (i32.const 0)",
        &format!(r#"(data "{}")"#, "x".repeat(len)),
    )
}
