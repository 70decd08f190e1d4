#!/usr/bin/env bash
# Memory queue against disk queue (issue 12), in one run, as ratios.
#
#   bench/queue.sh [seconds] [runs] [tail-lines] [backlog-MiB]
#                                         (defaults: 10 1 1000000 1024)
#
# Builds the release binaries. For each run, each case is measured with
# `[queue] type = "memory"` and then with `type = "disk"`, `sync = "batch"`
# (`QUEUE_SYNC=interval` for the other mode; the same daemon build, the
# same load, back to back):
#
# - ndjson-1000: HTTP NDJSON batches of 1,000 over 2 connections, trivial
#   handler, no sink (bench/http.sh's case): events/s accepted (loadgen), and
#   the daemon's CPU per event: its user + system time from the start of the
#   load until every accepted event was handled, over the events accepted
#   (`ingested` and `invocations_ok` in /v1/stats), and the disk queue's
#   fsyncs over the same time (`disk_queue.fsyncs`: events per fsync);
# - single-c64: single-event POSTs over 64 keep-alive connections (2 client
#   threads): events/s, p50/p99 latency to the 2xx, daemon CPU per event;
# - tail: <tail-lines> JSON lines through the trivial handler to a file sink
#   (bench/tail.sh's case, bench/tail_watch.py): lines/s, CPU per line;
#   the sink is checked to hold every line;
# - backlog: a handler that blocks (sleeps 50 min in poll_oneoff, `timeout` 1 h) so
#   that nothing is handled, and NDJSON batches posted 1 s at a time until
#   <backlog-MiB> are queued on disk (`du` of <state.dir>/queue; the memory
#   queue stops at its bound, `[server] queue` = 100,000 events, and answers
#   503), then held 10 s: VmRSS sampled after each second of growth and of
#   holding, and VmHWM. The daemon is then killed (SIGKILL: a graceful stop
#   would wait for the blocked handler).
#
# One JSON line per case and queue type goes to stdout and to
# bench/results/queue-<UTC time>.ndjson; bench/queue_table.py then prints
# disk/memory ratios against the issue's targets. On a shared machine run it
# under `flock /tmp/heavy.lock`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
secs="${1:-10}"
runs="${2:-1}"
lines="${3:-1000000}"
backlog_mib="${4:-1024}"

cargo build --release -q -p switchyard -p switchyard-bench
out="$(results_file queue)"
cat >"$dir/plugins/block.wat" <<'WAT'
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32)
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 3000000000000))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))
    (i32.const 0)))
WAT
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "{\"name\":\"bench.Line\",\"data\":{\"seq\":%d,\"user\":%d}}\n", i, i % 1000 }' \
    >"$dir/app.log"

# The [queue] section of a queue type. The disk queue's max_bytes leaves
# room for the backlog case.
queue_toml() {
    if [ "$1" = memory ]; then
        printf '[queue]\ntype = "memory"\n'
    else
        printf '[queue]\ntype = "disk"\nsync = "%s"\nmax_bytes = "%sMiB"\n' "${QUEUE_SYNC:-batch}" "$((backlog_mib * 2))"
    fi
}
# A fresh state folder and the config: the common settings, [queue], then stdin.
configure() {
    rm -rf "$dir/data" "$dir/out.ndjson"
    { queue_toml "$1"; cat; } | write_config
}
stat_of() { curl -fs "http://127.0.0.1:$port/v1/stats" | jq -r "$1"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; } # utime + stime, 10 ms ticks
now() { date +%s.%N; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
mib() { python3 -c "print(round($1 / 1024, 1))"; }
# Waits until every event accepted so far has been handled (2 min at most).
drained() {
    local _
    for _ in $(seq 2400); do
        [ "$(stat_of '.invocations_ok + ([.invocation_failures[]] | add) >= .ingested')" = true ] && return 0
        sleep 0.05
    done
    echo "events still unhandled 2 minutes after the load stopped" >&2
    exit 1
}
record() { # case, queue, run, result JSON
    printf '{"bench":"queue","case":"%s","queue":"%s","run":%s,"result":%s}\n' "$1" "$2" "$3" "$4" | tee -a "$out"
}

# An HTTP case: loadgen with the given arguments, then the daemon's CPU per
# event and the handled rate, from the start of the load until drained.
http_case() { # case, queue, run, loadgen args...
    local name="$1" q="$2" r="$3"
    shift 3
    local c0 i0 f0 t0 load c1 i1 f1 t1
    c0="$(ticks)" i0="$(stat_of .ingested)" f0="$(stat_of '.disk_queue.fsyncs // 0')" t0="$(now)"
    load="$(target/release/loadgen --addr "127.0.0.1:$port" --seconds "$secs" "$@")"
    drained
    c1="$(ticks)" i1="$(stat_of .ingested)" f1="$(stat_of '.disk_queue.fsyncs // 0')" t1="$(now)"
    record "$name" "$q" "$r" "$(python3 -c 'import json,sys
load = json.loads(sys.argv[1]); c0, c1, i0, i1, f0, f1, t0, t1 = map(float, sys.argv[2:])
load["daemon_cpu_us_per_event"] = round((c1 - c0) * 1e4 / max(i1 - i0, 1), 3)
load["handled_events_per_sec"] = round((i1 - i0) / (t1 - t0))
load["fsyncs"] = int(f1 - f0)
load["events_per_fsync"] = round((i1 - i0) / (f1 - f0), 1) if f1 > f0 else None
print(json.dumps(load))' "$load" "$c0" "$c1" "$i0" "$i1" "$f0" "$f1" "$t0" "$t1")"
}

http_cases() { # queue, run
    configure "$1" <<'TOML'

[[route]]
name = "all"
handlers = ["trivial"]
TOML
    start_daemon
    http_case ndjson-1000 "$1" "$2" --connections 2 --batch 1000
    http_case single-c64 "$1" "$2" --connections 64 --threads 2
    stop_daemon
}

tail_case() { # queue, run
    configure "$1" <<TOML

[[source.tail]]
path = "app.log"
start_at = "beginning"

[[route]]
name = "all"
handlers = ["trivial"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
TOML
    start_daemon
    local result sunk
    result="$(python3 bench/tail_watch.py "$port" "$lines" "$pid")"
    stop_daemon
    sunk="$(wc -l <"$dir/out.ndjson")"
    [ "$sunk" -eq "$lines" ] || { echo "$1 queue: the sink has $sunk lines, expected $lines" >&2; exit 1; }
    record tail "$1" "$2" "$result"
}

backlog_case() { # queue, run
    configure "$1" <<'TOML'

[plugin.block]
timeout = "1h"

[[route]]
name = "all"
handlers = ["block"]
TOML
    start_daemon
    sleep 1
    local idle queued=0 samples="" grow=0 full=0 load
    idle="$(kib VmRSS)"
    # Grow: 1 s of NDJSON batches at a time, until the backlog is on disk
    # (disk) or the queue refuses three seconds running (memory).
    while [ "$grow" -lt 120 ]; do
        load="$(target/release/loadgen --addr "127.0.0.1:$port" --seconds 1 --warmup 0 --connections 2 --batch 1000)"
        grow=$((grow + 1))
        queued="$(du -sb "$dir/data/queue" 2>/dev/null | cut -f1)" || queued=0
        samples="$samples{\"phase\":\"grow\",\"queued_mib\":$(mib "${queued:-0}/1024"),\"ingested\":$(stat_of .ingested),\"rss_mib\":$(mib "$(kib VmRSS)")},"
        if [ "$1" = disk ]; then
            [ "${queued:-0}" -ge "$((backlog_mib << 20))" ] && break
        else
            if [ "$(jq '.events_per_sec' <<<"$load")" = 0 ]; then full=$((full + 1)); else full=0; fi
            [ "$full" -ge 3 ] && break
        fi
    done
    local _
    for _ in $(seq 10); do
        sleep 1
        samples="$samples{\"phase\":\"hold\",\"rss_mib\":$(mib "$(kib VmRSS)")},"
    done
    record backlog "$1" "$2" "{\"idle_rss_mib\":$(mib "$idle"),\"queued_mib\":$(mib "${queued:-0}/1024"),\"ingested\":$(stat_of .ingested),\"refused\":$(stat_of .refused_queue_full),\"end_rss_mib\":$(mib "$(kib VmRSS)"),\"peak_rss_mib\":$(mib "$(kib VmHWM)"),\"samples\":[${samples%,}]}"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
}

for r in $(seq "$runs"); do
    for q in memory disk; do http_cases "$q" "$r"; done
    for q in memory disk; do tail_case "$q" "$r"; done
done
for q in memory disk; do backlog_case "$q" 1; done
python3 bench/queue_table.py "$out"
echo "results: $out" >&2
