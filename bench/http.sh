#!/usr/bin/env bash
# HTTP ingest throughput with a trivial wasm handler.
#
#   bench/http.sh [seconds-per-case]      (default 10)
#
# Builds release binaries, starts the daemon on a free loopback port with a
# config whose one route runs a trivial handler (no sink), and runs
# bench/loadgen for each case: single-event POSTs at several connection
# counts, NDJSON batches of 100 and 1,000, single events with ?wait=true
# (latency to handler completion), and the same paced at half the peak
# single-event rate (the latency target's condition). One JSON line per
# case goes to stdout and to bench/results/http-<date>.ndjson.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
secs="${1:-10}"

cargo build --release -q -p switchyard -p switchyard-bench
write_config <<TOML

[[route]]
name = "all"
handlers = ["trivial"]
TOML
start_daemon

out="$(results_file http)"
run() { # name, loadgen args...
    local name="$1"
    shift
    local line
    line="$(target/release/loadgen --addr "127.0.0.1:$port" --seconds "$secs" "$@")"
    printf '{"bench":"http","case":"%s","result":%s}\n' "$name" "$line" | tee -a "$out"
}
# Peak events/s of one case, from its line in $out.
peak() { python3 -c 'import json,sys; print(max(json.loads(l)["result"]["events_per_sec"] for l in open(sys.argv[1]) if json.loads(l)["case"]==sys.argv[2]))' "$out" "$1"; }

run single-c1 --connections 1
run single-c8 --connections 8
run single-c32 --connections 32
run single-c64 --connections 64 --threads 2
run ndjson-100-c4 --connections 4 --batch 100
run ndjson-1000-c2 --connections 2 --batch 1000
run single-wait-c8 --connections 8 --wait
# Latency to handler completion at half the single-event peak, paced.
half="$(python3 -c "print(max($(peak single-c8), $(peak single-c32)) // 2)")"
run single-wait-half-peak-c8 --connections 8 --wait --rate "$half"
echo "results: $out" >&2
