"""The table of bench/queue.sh: each case with the memory queue and the
disk queue side by side (medians over the runs), the disk/memory ratio and
the issue 12 target it is held to. The ratio is the median of each run's
own ratio (memory and disk measured back to back), which a loaded machine
disturbs less than a ratio of medians; the range follows it.

    python3 bench/queue_table.py bench/results/queue-<time>.ndjson [more files]
"""
import json
import statistics
import sys

lines = []
for i, path in enumerate(sys.argv[1:]):
    for l in open(path):
        if l.startswith("{"):
            d = json.loads(l)
            d["run"] = (i, d["run"])  # runs of different files are different runs
            lines.append(d)


def med(case, queue, *path):
    vals = []
    for l in lines:
        if l["case"] == case and l["queue"] == queue:
            v = l["result"]
            for k in path:
                v = v[k]
            vals.append(v)
    return statistics.median(vals) if vals else None


def per_run(case, queue, path):
    out = {}
    for l in lines:
        if l["case"] == case and l["queue"] == queue:
            v = l["result"]
            for k in path:
                v = v[k]
            out[l["run"]] = v
    return out


def row(label, case, path, target, check, digits=0, unit="", diff_too=False):
    m, d = med(case, "memory", *path), med(case, "disk", *path)
    if m is None or d is None:
        return
    pm, pd = per_run(case, "memory", path), per_run(case, "disk", path)
    ratios = sorted(pd[r] / pm[r] for r in pm if r in pd and pm[r])
    diffs = sorted(pd[r] - pm[r] for r in pm if r in pd)
    ratio, diff = statistics.median(ratios), statistics.median(diffs)
    spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    met = "yes" if check(m, d, diff if diff_too else ratio) else "**no**"
    shown = f"{ratio:.2f}{spread}"
    if diff_too:
        shown += f", {diff:+.2f} µs"
    print(f"| {label} | {m:,.{digits}f}{unit} | {d:,.{digits}f}{unit} | {shown} | {target} | {met if target else ''} |")


runs = len({l["run"] for l in lines if l["case"] != "backlog"})
print(f"memory vs disk queue (`sync = \"batch\"`), median of {runs} run(s)\n")
print("| measure | memory | disk | disk / memory | target | met |")
print("|---|---|---|---|---|---|")
row("NDJSON 1,000/request: events/s", "ndjson-1000", ["events_per_sec"], "≥ 0.70", lambda m, d, r: r >= 0.70)
row("NDJSON 1,000/request: daemon CPU per event", "ndjson-1000", ["daemon_cpu_us_per_event"],
    "≤ +1 µs", lambda m, d, diff: diff <= 1.0, 2, " µs", True)
row("NDJSON 1,000/request: handled events/s (load start to drained)", "ndjson-1000", ["handled_events_per_sec"], "", lambda *a: True)
row("single events, 64 connections: events/s", "single-c64", ["events_per_sec"], "≥ 0.40", lambda m, d, r: r >= 0.40)
row("single events, 64 connections: p50", "single-c64", ["latency_us", "p50"], "", lambda *a: True, 0, " µs")
row("single events, 64 connections: p99", "single-c64", ["latency_us", "p99"], "reported", lambda *a: True, 0, " µs")
row("single events, 64 connections: daemon CPU per event", "single-c64", ["daemon_cpu_us_per_event"], "", lambda *a: True, 2, " µs", True)
row("tail, trivial handler → file sink: lines/s", "tail", ["lines_per_second"], "≥ 0.85", lambda m, d, r: r >= 0.85)
row("tail: daemon CPU per line", "tail", ["cpu_us_per_line"], "", lambda *a: True, 2, " µs", True)

for case in ("ndjson-1000", "single-c64"):
    per = med(case, "disk", "events_per_fsync")
    if per is not None:
        print(f"\ndisk queue, {case}: {per:,.1f} events per fsync ({med(case, 'disk', 'fsyncs'):,.0f} fsyncs)")

for l in lines:
    if l["case"] != "backlog":
        continue
    r = l["result"]
    grow = [s for s in r["samples"] if s["phase"] == "grow"]
    print(f"\nbacklog, {l['queue']} queue: idle {r['idle_rss_mib']} MiB; {r['ingested']:,} events accepted "
          f"({r['queued_mib']} MiB on disk), {r['refused']:,} requests refused; RSS at the end {r['end_rss_mib']} MiB, "
          f"peak (VmHWM) {r['peak_rss_mib']} MiB")
    if l["queue"] == "disk" and grow:
        quarter = next((s for s in grow if s["queued_mib"] >= r["queued_mib"] / 4), grow[0])
        print(f"  RSS with {quarter['queued_mib']} MiB queued: {quarter['rss_mib']} MiB; with {r['queued_mib']} MiB "
              f"and 10 s later: {r['end_rss_mib']} MiB ({r['end_rss_mib'] - quarter['rss_mib']:+.1f} MiB: flat if near 0)")
    print("  samples (queued MiB → RSS MiB): " + ", ".join(
        f"{s.get('queued_mib', '·')}→{s['rss_mib']}" for s in r["samples"]))
