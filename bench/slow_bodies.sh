#!/usr/bin/env bash
# Slow bodies against the real daemon (issue 17, item 7): N connections send
# their headers, then a 1000-byte body one byte per second. Reports how the
# daemon answered them (408 at body_timeout, 503 past max_connections), how
# long the longest stayed open, the daemon's RSS before and at its peak
# (VmHWM), and how long an ordinary producer that starts during the attack
# and retries on 503 waits until it is served.
#
#   bench/slow_bodies.sh [connections]      (default 2000)
#
# Defaults of router.toml apply (body_timeout 10s, max_connections 1024).
# One JSON line goes to stdout and to bench/results/slow-bodies-<date>.ndjson.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
n="${1:-2000}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -n "${SWITCHYARD_BIN:-}" ] || cargo build --release -q -p switchyard
write_config <<TOML

[[route]]
name = "all"
handlers = ["trivial"]
TOML
start_daemon
out="$(results_file slow-bodies)"
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
before=$(kib VmRSS)
python3 - "$port" "$n" "$before" "$pid" <<'PY' | tee -a "$out"
import json, socket, sys, threading, time, urllib.request
port, n, before, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
head = (b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n")
socks, opened, answers, closed_after = [], {}, {}, []
start = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head)
    s.setblocking(False)
    socks.append(s)
    opened[s] = time.monotonic()
# An ordinary producer during the attack, retrying on 503 (Retry-After: 1)
# until it is served.
def ordinary():
    t = time.monotonic()
    tries = 0
    while time.monotonic() - t < 60:
        tries += 1
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=b'{"name":"a.B"}',
                                     headers={"content-type": "application/json"})
        try:
            status = urllib.request.urlopen(req, timeout=30).status
            return status, tries, round(time.monotonic() - t, 2)
        except Exception as e:
            last = str(e)
            time.sleep(1)
    return last, tries, round(time.monotonic() - t, 2)
result = {}
producer = threading.Thread(target=lambda: result.update(zip(("status", "tries", "served_after_s"), ordinary())))
time.sleep(1)
producer.start()
live = set(socks)
while live and time.monotonic() - start < 120:
    for s in list(live):
        try:
            data = s.recv(4096)
        except BlockingIOError:
            try:
                s.send(b" ")  # one more byte of the body
            except OSError:
                pass
            continue
        except OSError:
            data = b""
        if data and s not in answers:
            answers[s] = data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "?"
        if not data:  # closed by the daemon
            closed_after.append(time.monotonic() - opened[s])
            live.discard(s)
            s.close()
    time.sleep(1)
producer.join()
hwm = int(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")))
counts = {}
for code in answers.values():
    counts[code] = counts.get(code, 0) + 1
print(json.dumps({"bench": "slow_bodies", "connections": n, "answers": counts,
                  "still_open_after_120s": len(live),
                  "longest_open_s": round(max(closed_after, default=0), 1),
                  "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(hwm / 1024, 1),
                  "ordinary_post": result}))
PY
