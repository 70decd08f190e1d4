#!/usr/bin/env bash
# Tail source throughput: lines/s from a pre-written file to a file sink,
# through a trivial wasm handler and through no handler at all (the ratio is
# the sandbox's cost).
#
#   bench/tail.sh [lines] [format]      (defaults: 1000000 json)
#
# Builds the release binary, writes <lines> JSON lines (or text lines with
# format=text) to a file, then for each case starts the daemon with
# `start_at = "beginning"` on it and times from the first line handled to
# the last (GET /v1/stats, `tail.lines_handled`, polled every 10 ms), so
# that start-up is not counted. One JSON line per case goes to stdout and
# to bench/results/tail-<date>.ndjson.
set -euo pipefail
cd "$(dirname "$0")/.."
lines="${1:-1000000}"
format="${2:-json}"

cargo build --release -q -p switchyard
dir="$(mktemp -d)"
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
mkdir -p "$dir/plugins" "$dir/logs" bench/results
cat >"$dir/plugins/trivial.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0)))
WAT
if [ "$format" = json ]; then
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "{\"name\":\"bench.Line\",\"data\":{\"seq\":%d,\"user\":%d}}\n", i, i % 1000 }' >"$dir/logs/app.log"
else
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "user %d clicked deal %d\n", i % 1000, i }' >"$dir/logs/app.log"
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
out="bench/results/tail-$(date -u +%Y%m%dT%H%M%SZ).ndjson"

run() { # case name, handlers list (TOML array)
    local name="$1" handlers="$2"
    rm -rf "$dir/data" "$dir/out.ndjson"
    local name_key=""
    [ "$format" = text ] && name_key='name = "bench.Line"'
    cat >"$dir/router.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
queue = 100000

[plugins]
dir = "plugins"

[dead_letter]
path = "dead.ndjson"

[[source.tail]]
path = "logs/app.log"
format = "$format"
$name_key
start_at = "beginning"

[[route]]
name = "all"
handlers = $handlers
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
TOML
    SWITCHYARD_LOG=warn target/release/switchyard run --config "$dir/router.toml" &
    pid=$!
    local t0="" t1="" handled=0
    while :; do
        handled="$(curl -fs "http://127.0.0.1:$port/v1/stats" 2>/dev/null | jq '.tail.lines_handled' 2>/dev/null || echo 0)"
        if [ -z "$t0" ] && [ "${handled:-0}" -gt 0 ]; then t0="$(date +%s.%N)"; h0="$handled"; fi
        if [ "${handled:-0}" -ge "$lines" ]; then t1="$(date +%s.%N)"; break; fi
        sleep 0.01
    done
    kill "$pid"
    wait "$pid" || true
    pid=""
    local sunk
    sunk="$(wc -l <"$dir/out.ndjson")"
    [ "$sunk" -eq "$lines" ] || { echo "the sink has $sunk lines, expected $lines" >&2; exit 1; }
    python3 - "$name" "$lines" "$h0" "$t0" "$t1" "$format" <<'PY' | tee -a "$out"
import json, sys
name, n, h0, t0, t1, fmt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
secs = t1 - t0
print(json.dumps({"case": name, "format": fmt, "lines": n, "seconds": round(secs, 3), "lines_per_second": round((n - h0) / secs)}))
PY
}

run trivial-handler '["trivial"]'
run no-handler '[]'
echo "results: $out" >&2
