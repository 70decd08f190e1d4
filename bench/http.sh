#!/usr/bin/env bash
# HTTP ingest throughput with a trivial wasm handler.
#
#   bench/http.sh [seconds-per-case]      (default 10)
#
# Builds release binaries, starts the daemon on a free loopback port with a
# config whose one route runs a trivial handler (no sink), and runs
# bench/loadgen for each case: single-event POSTs at several connection
# counts, NDJSON batches of 100 and 1,000, and single events with
# ?wait=true (latency to handler completion). One JSON line per case goes
# to stdout and to bench/results/http-<date>.ndjson.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"

cargo build --release -q -p switchyard -p switchyard-bench
dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir/plugins" bench/results
cat >"$dir/plugins/trivial.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0)))
WAT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$dir/router.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
queue = 100000

[plugins]
dir = "plugins"

[dead_letter]
path = "dead.ndjson"

[[route]]
name = "all"
handlers = ["trivial"]
TOML
SWITCHYARD_LOG=warn target/release/switchyard run --config "$dir/router.toml" &
pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

out="bench/results/http-$(date -u +%Y%m%dT%H%M%SZ).ndjson"
run() { # name, loadgen args...
    local name="$1"
    shift
    local line
    line="$(target/release/loadgen --addr "127.0.0.1:$port" --seconds "$secs" "$@")"
    printf '{"case":"%s","result":%s}\n' "$name" "$line" | tee -a "$out"
}
run single-c1 --connections 1
run single-c8 --connections 8
run single-c32 --connections 32
run ndjson-100-c4 --connections 4 --batch 100
run ndjson-1000-c2 --connections 2 --batch 1000
run single-wait-c8 --connections 8 --wait
echo "results: $out" >&2
