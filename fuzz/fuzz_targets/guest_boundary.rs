//! The emit/log/fail boundary: what a guest hands the host. A real wasm
//! guest (WAT) calls the host imports with fuzzed pointers, lengths, levels
//! and memory contents; pointers outside memory must end the call with an
//! error (bad_abi), never a panic; emits are validated and bounded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard::config::Limits;
use switchyard::runtime::host::{add_imports, HostState};
use switchyard_sdk::abi;
use wasmtime::{Engine, InstancePre, Linker, Module, Store};

const GUEST: &str = r#"
(module
  (import "switchyard" "log" (func $log (param i32 i32 i32)))
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (import "switchyard" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "call") (param $op i32) (param $level i32) (param $ptr i32) (param $len i32) (result i32)
    (if (i32.eq (local.get $op) (i32.const 0))
      (then (call $log (local.get $level) (local.get $ptr) (local.get $len)) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 1))
      (then (return (call $emit (local.get $ptr) (local.get $len)))))
    (call $fail (local.get $ptr) (local.get $len))
    (i32.const 0)))
"#;

fn prepared() -> &'static (Engine, InstancePre<HostState>) {
    static PRE: OnceLock<(Engine, InstancePre<HostState>)> = OnceLock::new();
    PRE.get_or_init(|| {
        let engine = Engine::default();
        let module = Module::new(&engine, GUEST).unwrap();
        let mut linker = Linker::new(&engine);
        add_imports(&mut linker).unwrap();
        let pre = linker.instantiate_pre(&module).unwrap();
        (engine, pre)
    })
}

fn word(b: &[u8]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fuzz_target!(|input: &[u8]| {
    let (engine, pre) = prepared();
    let limits = Limits {
        max_emits: 4,
        max_emit_bytes: 4096,
        ..Limits::default()
    };
    let mut store = Store::new(engine, HostState::new(None, limits, std::time::Instant::now()));
    let instance = pre.instantiate(&mut store).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let call = instance
        .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "call")
        .unwrap();
    // Input: calls of 13 bytes (op, level, ptr, len), then a 0xff byte, then
    // the bytes put at the start of guest memory.
    let split = input.iter().position(|b| *b == 0xff).unwrap_or(input.len());
    let (calls, payload) = (&input[..split], input.get(split + 1..).unwrap_or(&[]));
    let payload = &payload[..payload.len().min(65536)];
    memory.write(&mut store, 0, payload).unwrap();
    for c in calls.chunks_exact(13) {
        let (op, level, ptr, len) = (
            i32::from(c[0] % 3),
            word(&c[1..5]),
            word(&c[5..9]),
            word(&c[9..13]),
        );
        let in_memory = (ptr as u32 as u64) + (len as u32 as u64) <= memory.data_size(&store) as u64;
        match call.call(&mut store, (op, level, ptr, len)) {
            Ok(code) => {
                assert!(in_memory, "out-of-range access was allowed");
                if op == 1 {
                    assert!(
                        [
                            abi::emit::OK,
                            abi::emit::MALFORMED,
                            abi::emit::TOO_MANY,
                            abi::emit::TOO_LARGE
                        ]
                        .contains(&code),
                        "{code}"
                    );
                }
            }
            Err(e) => {
                assert!(!in_memory, "in-range access failed: {e:?}");
                return;
            }
        }
    }
    let state = store.data();
    assert!(state.emit.events.len() <= 4);
    assert!(state.emit.bytes <= 4096);
    assert!(state
        .log
        .lines
        .iter()
        .all(|l| l.message.len() <= abi::MAX_MESSAGE_BYTES * 3));
    // The same bytes straight into the host's own parser.
    let mut direct = HostState::new(None, limits, std::time::Instant::now());
    let _ = direct.emit(payload);
});
