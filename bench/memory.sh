#!/usr/bin/env bash
# Resident memory of the daemon with 10 plugins loaded: idle after a first
# start (every plugin compiled), idle after a restart (plugins from the
# compiled-module cache), and under HTTP load through the `reshape` plugin.
#
#   bench/memory.sh [seconds-of-load]      (default 5)
#
# Needs the example plugins built (make plugins). Uses 9 compiled plugins
# from plugins/dist/ (Rust, C, Zig, AssemblyScript) plus the trivial WAT handler. RSS is VmRSS from
# /proc/<pid>/status; under load it is the largest of samples taken every
# 100 ms, and VmHWM (the peak) at the end. One JSON line per case goes to
# stdout and to bench/results/memory-<date>.ndjson.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
secs="${1:-5}"

cargo build --release -q -p switchyard -p switchyard-bench
for p in reshape.wasm enrich.wasm require_keys.wasm filter.wasm threshold.wasm redact.wasm audit.wasm \
    conformance_rust.wasm conformance_zig.wasm; do
    [ -f "plugins/dist/$p" ] || { echo "plugins/dist/$p is missing: run make plugins" >&2; exit 1; }
    cp "plugins/dist/$p" "$dir/plugins/"
done
[ "$(ls "$dir/plugins" | wc -l)" -eq 10 ] || { echo "expected 10 plugins" >&2; exit 1; }
write_config <<TOML

[[route]]
name = "clicks"
match = { name = "deals.DealClick" }
handlers = ["reshape"]
TOML
out="$(results_file memory)"
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
plugins_loaded() { curl -fs "http://127.0.0.1:$port/v1/plugins" | python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin)["plugins"] if p.get("sha256")))'; }
record() { # case, KiB, extra JSON fields
    printf '{"bench":"memory","case":"%s","plugins":%s,"rss_mib":%s%s}\n' "$1" "$(plugins_loaded)" \
        "$(python3 -c "print(round($2 / 1024, 1))")" "${3:-}" | tee -a "$out"
}

start_daemon
sleep 2
record idle-first-start "$(kib VmRSS)"
stop_daemon

start_daemon
sleep 2
record idle-cached "$(kib VmRSS)"
max=0
target/release/loadgen --addr "127.0.0.1:$port" --seconds "$secs" --connections 8 >"$dir/load.json" &
load=$!
while kill -0 "$load" 2>/dev/null; do
    now="$(kib VmRSS)"
    [ "$now" -gt "$max" ] && max="$now"
    sleep 0.1
done
wait "$load"
events="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events_per_sec"])' "$dir/load.json")"
record under-load "$max" ",\"peak_rss_mib\":$(python3 -c "print(round($(kib VmHWM) / 1024, 1))"),\"events_per_sec\":$events"
echo "results: $out" >&2
