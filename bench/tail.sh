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
# last, polling GET /v1/stats (`tail.lines_handled`) every 20 ms from one
# python process, so that start-up is not counted and the poller costs
# little; it also reports the daemon's CPU time per line (user + system).
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
cat >"$dir/watch.py" <<'PY'
import json, sys, time, urllib.request
port, total, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def handled():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=5) as r:
            return json.load(r)["tail"]["lines_handled"]
    except Exception:
        return 0
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in ticks of 10 ms
deadline = time.time() + 600
t0 = None
while True:
    n = handled()
    if t0 is None and n > 0:
        t0, n0, c0 = time.time(), n, cpu()
    if n >= total:
        t1, c1 = time.time(), cpu()
        break
    if time.time() > deadline:
        sys.exit(f"only {n} of {total} lines handled after 10 minutes")
    time.sleep(0.02)
n = total - n0
print(json.dumps({"lines_per_second": round(n / (t1 - t0)), "cpu_us_per_line": round((c1 - c0) * 1e6 / n, 2), "seconds": round(t1 - t0, 3)}))
PY
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
    result="$(python3 "$dir/watch.py" "$port" "$lines" "$pid")"
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
