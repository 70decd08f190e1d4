#!/usr/bin/env bash
# Does a component's compile stall other plugins' events? (issue 14: "hot
# reload of a component does not stall other plugins' events while it
# compiles"). The daemon serves the trivial handler; one client posts one
# event at a time with `?wait=true` (the time to handler completion), first
# with nothing else going on, then while the Python example component
# (plugins/dist/classify.wasm, 18 MB) is swapped in by a reload: the new
# file is the same component with a custom section appended, so it is not
# in the compile cache and is compiled in full.
#
#   bench/component_reload.sh [seconds-of-baseline]      (default 5)
#
# Prints one JSON line per phase (events, p50/p99/max ms) and how long the
# compile took, also to bench/results/component-reload-<date>.ndjson. The
# "idle" phase may still overlap the first load's compile (the listing
# shows a plugin once its compile has started); "after" is the baseline.
# Needs `make plugins` (the Python toolchain builds classify.wasm).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
secs="${1:-5}"
out="$(results_file component-reload)"
[ -f plugins/dist/classify.wasm ] || { echo "plugins/dist/classify.wasm is missing: run make plugins" >&2; exit 1; }

cargo build --release -q -p switchyard
cp plugins/dist/classify.wasm "$dir/plugins/classify.wasm"
write_config <<TOML
[state]
dir = "state"

[plugin.classify]
config = { routes = ["/deals/{id}"], slow_ms = 250 }

[[route]]
name = "ping"
match = { name = "bench.Ping" }
handlers = ["trivial"]
TOML
# An 18 MB component: larger load limits, in the [plugins] table.
sed -i 's/^\[plugins\]$/[plugins]\nmax_file_size = "32MiB"\ncompile_timeout = "300s"/' "$dir/router.toml"
start_daemon
until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.1; done

python3 - "$port" "$secs" "$dir/plugins/classify.wasm" <<'PY' | tee -a "$out"
import http.client, json, os, statistics, sys, time
port, secs, comp = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"name": "bench.Ping", "data": {}})

def ping():
    t = time.perf_counter()
    conn.request("POST", "/v1/events?wait=true", body, {"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
    return (time.perf_counter() - t) * 1000

def sha():
    conn.request("GET", "/v1/plugins"); r = conn.getresponse()
    plugins = json.loads(r.read())["plugins"]
    return next((p.get("sha256") for p in plugins if p["name"] == "classify"), None)

def report(phase, ms, **extra):
    ms = sorted(ms)
    line = {"bench": "component_reload", "phase": phase, "events": len(ms),
            "p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(len(ms) * 0.99)], 3),
            "max_ms": round(ms[-1], 3), **extra}
    print(json.dumps(line), flush=True)

# The first load compiles the component too: measure once it is in.
t0 = time.time()
while sha() is None:
    if time.time() - t0 > 120:
        sys.exit("the component did not load within 120 s")
    time.sleep(0.1)

base, end = [], time.time() + secs
while time.time() < end:
    base.append(ping())
report("idle", base)

old = sha()
data = open(comp, "rb").read()
name = b"bench-reload"
payload = len(name).to_bytes(1, "little") + name + os.urandom(16)
section = b"\x00" + len(payload).to_bytes(1, "little") + payload   # a custom section
tmp = comp + ".tmp"
open(tmp, "wb").write(data + section)
os.rename(tmp, comp)
t0 = time.time()
during = []
while sha() == old:
    if time.time() - t0 > 120:
        sys.exit("the new component did not load within 120 s")
    during.append(ping())
report("while the component compiles", during, compile_s=round(time.time() - t0, 1))
time.sleep(1)
after, end = [], time.time() + secs
while time.time() < end:
    after.append(ping())
report("after, nothing compiling", after)
PY
