#!/usr/bin/env bash
# The figures of issue 16 (a plugin cannot take the daemon down), on the
# release binary: the sleeping handler's outcome time, the self-routed
# fan-out's time and peak RSS, the 200,000-function module's load outcome
# with reload and SIGTERM times meanwhile, and the log bytes/s of a plugin
# logging 16 KiB lines. usage: bench/issue16.sh (after cargo build --release)
set -euo pipefail
BIN=${SWITCHYARD_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/switchyard}
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
PORT=${PORT:-7690}
ms() { date +%s%3N; }

# A handler sleeping 5 s in poll_oneoff; and one emitting 10 loop.Tick per call;
# and one logging a 16 KiB line per call.
sleeper='(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32)
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 5000000000))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))
    (i32.const 0)))'
fanout='(module
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"name\":\"loop.Tick\"}")
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (local $i i32)
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (i32.const 10)))
      (drop (call $emit (i32.const 0) (i32.const 20)))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
    (i32.const 0)))'
logger="(module
  (import \"switchyard\" \"log\" (func \$log (param i32 i32 i32)))
  (memory (export \"memory\") 1)
  (data (i32.const 32768) \"$(head -c 16384 /dev/zero | tr '\0' x)\")
  (func (export \"switchyard_alloc\") (param i32) (result i32) (i32.const 1024))
  (func (export \"switchyard_handle\") (param i32 i32) (result i32)
    (call \$log (i32.const 2) (i32.const 32768) (i32.const 16384)) (i32.const 0)))"

setup() { # $1: extra [plugins] lines
  rm -rf "$W/d"; mkdir -p "$W/d/plugins"
  printf '%s' "$sleeper" > "$W/d/plugins/sleepy.wat"
  printf '%s' "$fanout" > "$W/d/plugins/fanout.wat"
  printf '%s' "$logger" > "$W/d/plugins/chatty.wat"
  cat > "$W/d/router.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
workers = 2
[plugins]
dir = "plugins"
timeout = "250ms"
$1
[dead_letter]
path = "dead.ndjson"
[[route]]
name = "slow"
match = { name = "slow.*" }
handlers = ["sleepy"]
[[route]]
name = "loop"
match = { name = "loop.*" }
handlers = ["fanout"]
[[route]]
name = "chatty"
match = { name = "chatty.*" }
handlers = ["chatty"]
TOML
}
start() { "$BIN" run --config "$W/d/router.toml" 2> "$W/d/log" & PID=$!
  until curl -sf "127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.05; done; }
post() { curl -s -o "$W/out" -w '%{time_total}' -H 'content-type: application/json' -d "$2" "127.0.0.1:$PORT$1"; }
hwm() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }
stop() { local t=$(ms); kill -TERM $PID; wait $PID || true; echo $(( $(ms) - t )); }

echo "== 1. sleeping handler (sleeps 5 s, timeout 250ms)"
echo '{"name":"slow.Nap"}' > "$W/ev.json"
setup ""
t=$(ms); "$BIN" plugin run "$W/d/plugins/sleepy.wat" --event "$W/ev.json" --timeout 250ms --json > "$W/out" || true
echo "plugin run: $(( $(ms) - t )) ms, $(cat "$W/out" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["outcome"], v["micros"], "µs:", v["message"])')"
start
echo "daemon ?wait=true: $(post '/v1/events?wait=true' '{"name":"slow.Nap"}') s, $(python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["events"][0]["handlers"][0]; print(h["outcome"])' "$W/out")"
echo "SIGTERM: $(stop) ms"

echo "== 2. self-routed fan-out of 10 (max_cascade 1000)"
setup ""; start
echo "RSS before: $(hwm) KiB"
echo "root event ?wait=true: $(post '/v1/events?wait=true' '{"name":"loop.Tick"}') s, emitted $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["events"][0]["emitted"]))' "$W/out"), cascade_limit dead letters $(grep -c cascade_limit "$W/d/dead.ndjson")"
echo "peak RSS: $(hwm) KiB"; echo "SIGTERM: $(stop) ms"

echo "== 3. 200,000-function module"
python3 "$(dirname "$0")/many_functions.py" "$W/big.wasm"
setup ""; start
cp "$W/big.wasm" "$W/d/.big.tmp"; t=$(ms); mv "$W/d/.big.tmp" "$W/d/plugins/big.wasm"; sleep 0.4
echo "default limits: POST /v1/reload $(curl -s -o "$W/out" -w '%{time_total}' -X POST 127.0.0.1:$PORT/v1/reload) s: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failed"]["big"])' "$W/out")"
echo "SIGTERM: $(stop) ms"
setup 'max_file_size = "16MiB"'; start
cp "$W/big.wasm" "$W/d/.big.tmp"; t=$(ms); mv "$W/d/.big.tmp" "$W/d/plugins/big.wasm"; sleep 0.4
echo "max_file_size 16MiB: POST /v1/reload $(curl -s -o "$W/out" -w '%{time_total}' -X POST 127.0.0.1:$PORT/v1/reload) s: $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("compiling:", v["compiling"], "failed:", v["failed"])' "$W/out")"
echo "a good event meanwhile: $(post '/v1/events?wait=true' '{"name":"loop.Tick"}') s (a 1001-invocation cascade)"
until curl -s 127.0.0.1:$PORT/v1/plugins | grep -q 'compile_timeout'; do sleep 0.1; done
echo "listed as failed $(( $(ms) - t )) ms after the rename; peak RSS so far $(hwm) KiB"
echo "POST /v1/reload meanwhile: $(curl -s -o /dev/null -w '%{time_total}' -X POST 127.0.0.1:$PORT/v1/reload) s"
echo "SIGTERM while the abandoned compile runs: $(stop) ms"

echo "== 4. 16 KiB log lines (defaults: 100 lines/s, 64 KiB/s)"
setup ""; start
python3 -c 'import json; print(json.dumps([{"name":"chatty.Line"}]*50))' > "$W/batch.json"
: > "$W/d/log"; t=$(ms)
while (( $(ms) - t < 5000 )); do curl -s -o /dev/null -H 'content-type: application/json' --data-binary @"$W/batch.json" "127.0.0.1:$PORT/v1/events?wait=true"; done
secs=$(( $(ms) - t ))
bytes=$(grep -a xxxxxxxxxxxxxxxx "$W/d/log" | wc -c)
echo "plugin log: $bytes bytes in $secs ms = $(( bytes * 1000 / secs )) bytes/s"
stop > /dev/null
