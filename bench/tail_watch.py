"""Times a tail run: from the first line handled to the last, polling
GET /v1/stats (`tail.lines_handled`) every 20 ms, so that start-up is not
counted and the poller costs little; also the daemon's CPU time per line
(user + system). Prints one JSON object.

    python3 bench/tail_watch.py PORT LINES PID
"""
import json
import sys
import time
import urllib.request

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
if n0 >= total:
    sys.exit(f"all {total} lines were handled before the first poll: too few lines to time")
n = total - n0
print(json.dumps({"lines_per_second": round(n / (t1 - t0)), "cpu_us_per_line": round((c1 - c0) * 1e6 / n, 2), "seconds": round(t1 - t0, 3)}))
