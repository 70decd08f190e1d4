#!/usr/bin/env bash
# The crash harness for long runs (issue 12): producers post NDJSON batches
# of events with ids of their own while the daemon is killed with `kill -9`
# at a random moment, CYCLES times, each time restarted on the same state
# folder; then a last start and SIGTERM (a graceful stop drains the queue).
# Prints one JSON line: events accepted (answered 2xx), lost (accepted, not
# in the file sink: must be 0), duplicated (extra copies in the sink), and
# those that got no answer (killed mid-request) but were handled anyway.
# Exits 1 when an accepted event was lost.
#
#   bench/crash.sh [CYCLES]              # default 10
#   HANDLER=slow bench/crash.sh 20       # a handler slower than the producers:
#                                        # the queue is deep at every kill
#   QUEUE=memory bench/crash.sh 6        # the memory queue, for comparison (loses)
#   SEED=123 bench/crash.sh              # replay the kill moments of a run
#
# Other knobs (environment): CONNECTIONS (producers, 4), BATCH (events per
# request, 1000), LIMIT (batches each producer gets accepted per cycle at
# most: 0 = no limit, the default with the trivial handler; 1 with the slow
# one, so that the last start drains in reasonable time), KILL_MS (the kill
# comes 0..KILL_MS ms after the start, 3000), SWITCHYARD_BIN (the daemon,
# target/release/switchyard).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init

cycles="${1:-10}"
handler="${HANDLER:-trivial}"
queue="${QUEUE:-disk}"
connections="${CONNECTIONS:-4}"
batch="${BATCH:-1000}"
kill_ms="${KILL_MS:-3000}"
seed="${SEED:-$RANDOM}"
RANDOM="$seed"

case "$handler" in
trivial) limit="${LIMIT:-0}" ;;
slow)
    limit="${LIMIT:-1}"
    # Sleeps 1 ms per event (WASI poll_oneoff): about 1,000 events/s per
    # worker, far below what the producers post.
    cat >"$dir/plugins/trivial.wat" <<'WAT'
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32)
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 1000000))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))
    (i32.const 0)))
WAT
    ;;
*) echo "HANDLER is trivial or slow, not $handler" >&2; exit 2 ;;
esac

write_config <<TOML
[queue]
type = "$queue"

[plugin.trivial]
timeout = "10s"

[[route]]
name = "all"
handlers = ["trivial"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
TOML

# One producer: posts batches with ids <prefix>-<n> until the daemon stops
# answering (or <limit> batches were accepted, then idles); appends "<prefix> <first> <count> <status>" per batch to its
# record ("none" as status when the request got no answer).
cat >"$dir/produce.py" <<'PY'
import http.client, sys, time
port, prefix, batch, record, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
n = accepted = 0
with open(record, "a") as out:
    while True:
        if limit and accepted >= limit:
            time.sleep(3600)  # killed with the cycle
        body = "".join('{"id":"%s-%d","name":"c.Event","data":{"n":%d}}\n' % (prefix, i, i)
                       for i in range(n, n + batch))
        try:
            conn.request("POST", "/v1/events", body, {"content-type": "application/x-ndjson"})
            resp = conn.getresponse()
            resp.read()
            status = str(resp.status)
        except Exception:
            status = "none"
        accepted += status.startswith("2")
        out.write("%s %d %d %s\n" % (prefix, n, batch, status))
        out.flush()
        n += batch
        if status == "none":
            break
PY

# Counts accepted, lost, duplicated from the records and the sink.
cat >"$dir/tally.py" <<'PY'
import collections, glob, json, sys
d, cycles, seed, handler, queue = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
accepted, unanswered = set(), set()
for path in glob.glob(d + "/record-*"):
    for line in open(path):
        prefix, first, count, status = line.split()
        ids = ("%s-%d" % (prefix, i) for i in range(int(first), int(first) + int(count)))
        if status.startswith("2"):
            accepted.update(ids)
        elif status == "none":
            unanswered.update(ids)
seen, torn = collections.Counter(), 0
with open(d + "/out.ndjson", "rb") as f:
    for line in f:
        try:
            seen[json.loads(line)["id"]] += 1
        except ValueError:
            torn += 1
lost = sum(1 for i in accepted if i not in seen)
print(json.dumps({"bench": "crash", "queue": queue, "handler": handler, "cycles": cycles,
                  "seed": seed, "accepted": len(accepted), "lost": lost,
                  "duplicated": sum(n - 1 for n in seen.values()),
                  "unanswered_handled": sum(1 for i in unanswered if i in seen),
                  "torn_lines": torn}))
sys.exit(1 if lost else 0)
PY

for cycle in $(seq "$cycles"); do
    start_daemon
    producers=()
    for c in $(seq "$connections"); do
        python3 "$dir/produce.py" "$port" "k$cycle-$c" "$batch" "$dir/record-$cycle-$c" "$limit" &
        producers+=($!)
    done
    sleep "$(awk -v ms="$((RANDOM * 32768 + RANDOM))" -v max="$kill_ms" 'BEGIN { printf "%.3f", (ms % (max + 1)) / 1000 }')"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    # A producer that reached its limit idles: end it.
    kill "${producers[@]}" 2>/dev/null || true
    wait "${producers[@]}" 2>/dev/null || true
    echo "cycle $cycle: killed" >&2
done
# The last start drains the queue; SIGTERM stops it gracefully, once it is
# ready (/healthz answers while plugins load, and a daemon stopped while
# starting leaves its backlog on disk for the next start).
start_daemon
for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
kill "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
    echo "the graceful stop exited $status" >&2
    exit 1
fi
python3 "$dir/tally.py" "$dir" "$cycles" "$seed" "$handler" "$queue" | tee -a "$(results_file crash)"
