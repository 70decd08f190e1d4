#!/usr/bin/env bash
# Tail source throughput: lines/s from a pre-written file to a file sink,
# through a trivial wasm handler and through no handler at all (the ratio is
# the sandbox's cost).
#
#   bench/tail.sh [lines] [runs] [format]      (defaults: 1000000 3 json)
#
# Builds the release binary and writes <lines> lines (JSON events, or text
# with format=text) to a file. Each run starts the daemon on it with
# `start_at = "beginning"` and times from the first line handled to the
# last (bench/tail_watch.py: start-up is not counted; it also reports the
# daemon's CPU time per line, user + system).
# Then it checks the sink holds every line. One JSON line per run goes to
# stdout and to bench/results/tail-<date>.ndjson.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
lines="${1:-1000000}"
runs="${2:-3}"
format="${3:-json}"

cargo build --release -q -p switchyard
mkdir -p "$dir/logs"
if [ "$format" = json ]; then
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "{\"name\":\"bench.Line\",\"data\":{\"seq\":%d,\"user\":%d}}\n", i, i % 1000 }' >"$dir/logs/app.log"
    name_key=""
else
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "user %d clicked deal %d\n", i % 1000, i }' >"$dir/logs/app.log"
    name_key='name = "bench.Line"'
fi
out="$(results_file tail)"

run() { # case name, handlers (a TOML array)
    local name="$1" handlers="$2"
    rm -rf "$dir/data" "$dir/out.ndjson"
    write_config <<TOML

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
    start_daemon
    local result
    result="$(python3 bench/tail_watch.py "$port" "$lines" "$pid")"
    stop_daemon
    local sunk
    sunk="$(wc -l <"$dir/out.ndjson")"
    [ "$sunk" -eq "$lines" ] || { echo "the sink has $sunk lines, expected $lines" >&2; exit 1; }
    printf '{"bench":"tail","case":"%s","format":"%s","lines":%s,"result":%s}\n' "$name" "$format" "$lines" "$result" | tee -a "$out"
}

for _ in $(seq "$runs"); do
    run trivial-handler '["trivial"]'
    run no-handler '[]'
done
echo "results: $out" >&2
