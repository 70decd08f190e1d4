#!/usr/bin/env bash
# Issue 12's storage measurement: fjall vs redb vs a plain segment log on
# the disk queue's workload (see README.md beside this script).
#
#   bench/queue-storage/run.sh [runs] [events] [seconds]     (defaults: 3 300000 5)
#
# Builds the standalone project (release, its own Cargo.lock and target/),
# runs it `runs` times (data in $TMPDIR, or QUEUE_STORAGE_DIR), writes every
# JSON line to bench/results/queue-storage-<UTC time>.ndjson and prints a
# table of the medians. Wrap it in `flock /tmp/heavy.lock` on a shared
# machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-3}"
events="${2:-300000}"
secs="${3:-5}"
cargo build --release --locked -q --manifest-path "$here/Cargo.toml"
mkdir -p "$here/../results"
out="$here/../results/queue-storage-$(date -u +%Y%m%dT%H%M%SZ).ndjson"
dir_args=()
[ -n "${QUEUE_STORAGE_DIR:-}" ] && dir_args=(--dir "$QUEUE_STORAGE_DIR")
for _ in $(seq "$runs"); do
    "$here/target/release/queue-storage-bench" --events "$events" --seconds "$secs" "${dir_args[@]}" | tee -a "$out"
done
python3 "$here/table.py" "$out"
echo "results: $out" >&2
