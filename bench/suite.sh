#!/usr/bin/env bash
# The whole benchmark suite, one command:
#
#   bench/suite.sh [quick]
#
# Runs, in order: the invocation benchmarks (criterion, `cargo bench -p
# switchyard --bench invoke`), HTTP ingest (bench/http.sh), the tail source
# (bench/tail.sh), reload latency and start-up (target/release/reload) and
# memory (bench/memory.sh). Every JSON line they print is collected into
# bench/results/suite-<UTC time>.ndjson, and a Markdown table of the figures
# against the targets is written beside it (suite-<UTC time>.md) and
# printed. `quick` runs shorter cases (for a smoke test, not for figures).
# Takes about 10 minutes on 2 cores; needs `make plugins` first.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-full}"
if [ "$mode" = quick ]; then http_secs=2 tail_lines=200000 tail_runs=1 load_secs=2; else
    http_secs=10 tail_lines=1000000 tail_runs=2 load_secs=5; fi

[ -f plugins/dist/reshape.wasm ] || { echo "plugins/dist/reshape.wasm is missing: run make plugins" >&2; exit 1; }
mkdir -p bench/results
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="bench/results/suite-$stamp.ndjson"
: >"$out"
collect() { grep '^{"bench"' | tee -a "$out"; }

echo "== invocation (criterion)" >&2
cargo bench -q -p switchyard --bench invoke 2>&1 | tee /dev/stderr | collect >/dev/null
echo "== HTTP ingest" >&2
bench/http.sh "$http_secs" | collect
echo "== tail" >&2
bench/tail.sh "$tail_lines" "$tail_runs" | collect
echo "== reload and start-up" >&2
cargo build --release -q -p switchyard -p switchyard-bench
printf '{"bench":"reload","result":%s}\n' "$(target/release/reload)" | collect
echo "== memory" >&2
bench/memory.sh "$load_secs" | collect

python3 bench/table.py "$out" "$(nproc)" | tee "bench/results/suite-$stamp.md"
echo "results: $out" >&2
