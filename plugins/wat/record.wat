;; record: records every event it sees as an `audit.Recorded` event whose
;; data is the original envelope, so that an audit route can archive it.
;;
;; Shows the whole handler ABI with no toolchain: a bump allocator that
;; leaves room for a prefix before the event, so the emitted JSON is built
;; around the event in place, without copying it.
(module
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (import "switchyard" "log" (func $log (param i32 i32 i32)))
  (import "switchyard" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)

  ;; 41 bytes, written just before the event
  (data (i32.const 0) "{\"name\":\"audit.Recorded\",\"data\":{\"event\":")
  ;; 2 bytes, written just after it
  (data (i32.const 64) "}}")
  (data (i32.const 96) "record: emit was refused")
  (data (i32.const 128) "record: recorded")

  ;; The event goes at 4096 + 64; the prefix fits in the 64 bytes before it.
  (func (export "switchyard_alloc") (param $len i32) (result i32)
    (local $pages i32)
    ;; pages needed for [0, 4160 + len + 2)
    (local.set $pages
      (i32.shr_u (i32.add (local.get $len) (i32.const 69697)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 4160))

  (func (export "switchyard_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $start i32)
    (local.set $start (i32.sub (local.get $ptr) (i32.const 41)))
    (memory.copy (local.get $start) (i32.const 0) (i32.const 41))
    (memory.copy (i32.add (local.get $ptr) (local.get $len)) (i32.const 64) (i32.const 2))
    (if (i32.ne
          (call $emit (local.get $start) (i32.add (local.get $len) (i32.const 43)))
          (i32.const 0))
      (then
        (call $fail (i32.const 96) (i32.const 24))
        (return (i32.const 1))))
    (call $log (i32.const 1) (i32.const 128) (i32.const 16))
    (i32.const 0))
)
