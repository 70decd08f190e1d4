#!/usr/bin/env bash
# The full-disk scenario of issue 17, on any build: the dead-letter log (or
# a file sink) on a 2 MiB tmpfs filled to its last 48 KiB; 1,500 events
# through a trapping handler (or to the sink); SIGTERM. Prints one JSON line:
# events accepted, where each ended (file, dead letters, daemon log),
# events nowhere, whether the file ends in a torn line, the exit code.
#
#   bench/full_disk.sh [dead|sink]      # needs root (mount)
#   SWITCHYARD_BIN=/path/to/switchyard bench/full_disk.sh dead   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-dead}"
bin="${SWITCHYARD_BIN:-target/debug/switchyard}"
dir="$(mktemp -d)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    umount -l "$dir/small" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/small" "$dir/plugins"
mount -t tmpfs -o size=2m tmpfs "$dir/small"
dd if=/dev/zero of="$dir/small/filler" bs=4k 2>/dev/null || true
truncate -s -48K "$dir/small/filler"
cat >"$dir/plugins/trap.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) unreachable))
WAT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
if [ "$mode" = dead ]; then dl=small/dead.ndjson; out=out.ndjson; name=trap.Event; file="$dir/small/dead.ndjson"
else dl=dead.ndjson; out=small/out.ndjson; name=sink.Event; file="$dir/small/out.ndjson"; fi
cat >"$dir/router.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[plugins]
dir = "plugins"
[dead_letter]
path = "$dl"
[[route]]
name = "traps"
match = { name = "trap.*" }
handlers = ["trap"]
[[route]]
name = "archive"
match = { name = "sink.*" }
sinks = ["out"]
[sink.out]
type = "file"
path = "$out"
TOML
"$bin" --log-format json run --config "$dir/router.toml" 2>"$dir/log" &
pid=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
for b in $(seq 15); do
    python3 -c "import json; print(json.dumps([{'name': '$name', 'data': {'i': i, 'pad': 'x'*200}} for i in range(100)]))" |
        curl -fs -H 'content-type: application/json' --data-binary @- "http://127.0.0.1:$port/v1/events" >>"$dir/ids"
    echo >>"$dir/ids"
done
kill -TERM "$pid"
set +e; wait "$pid"; code=$?; set -e; pid=""
python3 - "$dir" "$file" "$code" "$mode" <<'PY'
import json, sys
d, path, code, mode = sys.argv[1:]
accepted = set()
for l in open(f"{d}/ids"):
    if l.strip(): accepted.update(json.loads(l)["ids"])
raw = open(path, "rb").read()
torn = bool(raw) and not raw.endswith(b"\n")
ids_file, bad = [], 0
for l in raw.split(b"\n"):
    if not l: continue
    try:
        v = json.loads(l)
        ids_file.append(v["event"]["id"] if mode == "dead" else v["id"])
    except Exception:
        bad += 1
ids_dl = []
if mode == "sink":
    for l in open(f"{d}/dead.ndjson"):
        if l.strip(): ids_dl.append(json.loads(l)["event"]["id"])
ids_log = []
for l in open(f"{d}/log"):
    try: v = json.loads(l)
    except Exception: continue
    if "letter" in v: ids_log.append(json.loads(v["letter"])["event"]["id"])
    # Builds before issue 17 put the event at the end of the message.
    elif "only in this log line: " in v.get("message", ""):
        ids_log.append(json.loads(v["message"].split("only in this log line: ", 1)[1])["id"])
somewhere = set(ids_file) | set(ids_dl) | set(ids_log)
print(json.dumps({"mode": mode, "accepted": len(accepted), "in_file": len(ids_file), "unparsable_lines": bad,
                  "torn_last_line": torn, "in_dead_letters": len(ids_dl), "in_daemon_log": len(ids_log),
                  "nowhere": len(accepted - somewhere), "exit_code": int(code)}))
PY
