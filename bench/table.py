"""Turns a bench/suite.sh results file into a Markdown table of figures
against the targets of the performance issue.

    python3 bench/table.py bench/results/suite-<time>.ndjson [cores]
"""
import json
import sys
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cores = sys.argv[2] if len(sys.argv) > 2 else "?"
by = defaultdict(list)
for r in rows:
    by[(r["bench"], r.get("case"))].append(r)


def one(bench, case):
    found = by.get((bench, case))
    if not found:
        sys.exit(f"{sys.argv[1]}: no result for {bench} {case}")
    return found


def best(bench, case, key):
    return max(r["result"][key] for r in one(bench, case))


out = []


def row(what, figure, target, met):
    out.append(f"| {what} | {figure} | {target} | {'yes' if met else '**no**'} |")


inv = {case: one("invoke", case)[0] for case in
       ["trivial/fresh", "trivial/reused", "reshape/fresh", "reshape/reused", "reshape/native"]}
row("invocation, trivial handler, fresh instance (p50)", f"{inv['trivial/fresh']['p50_us']:.2f} µs", "≤ 5 µs",
    inv["trivial/fresh"]["p50_us"] <= 5)
row("invocation, trivial handler, reused instance (p50)", f"{inv['trivial/reused']['p50_us']:.2f} µs", "≤ 0.5 µs",
    inv["trivial/reused"]["p50_us"] <= 0.5)
for mode in ["fresh", "reused"]:
    ratio = inv[f"reshape/{mode}"]["p50_us"] / inv["reshape/native"]["p50_us"]
    row(f"JSON reshape, wasm ({mode}) / native (p50 {inv[f'reshape/{mode}']['p50_us']:.2f} / "
        f"{inv['reshape/native']['p50_us']:.2f} µs)", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5)

single = max(best("http", c, "events_per_sec") for c in ["single-c1", "single-c8", "single-c32", "single-c64"])
row("HTTP single-event POSTs, best of 1/8/32/64 connections", f"{single:,.0f} events/s", "≥ 50,000", single >= 50_000)
batched = max(best("http", c, "events_per_sec") for c in ["ndjson-100-c4", "ndjson-1000-c2"])
row("HTTP NDJSON batches, best of 100/1,000", f"{batched:,.0f} events/s", "≥ 500,000", batched >= 500_000)
half = one("http", "single-wait-half-peak-c8")[0]["result"]
p99_ms = half["latency_us"]["p99"] / 1000
row(f"HTTP p99 to handler completion at half peak ({half['rate']:,.0f} req/s)", f"{p99_ms:.2f} ms", "≤ 2 ms",
    p99_ms <= 2)

th = max(r["result"]["lines_per_second"] for r in one("tail", "trivial-handler"))
nh = max(r["result"]["lines_per_second"] for r in one("tail", "no-handler"))
row("tail, trivial handler", f"{th:,.0f} lines/s", "≥ 500,000", th >= 500_000)
row("tail, no handler", f"{nh:,.0f} lines/s", "≥ 1,000,000", nh >= 1_000_000)

rl = one("reload", None)[0]["result"]
r = rl["reload_rename_to_first_event"]
row("reload: rename to first event on the new version (p99)", f"{r['p99_ms']:.1f} ms", "≤ 100 ms", r["p99_ms"] <= 100)
s = rl["startup_to_listening"]
out.append(f"| start-up with {s['plugins']} plugins: cold / cached | {s['cold_median_ms']:.0f} / "
           f"{s['cached_median_ms']:.1f} ms | (none) | |")

idle = one("memory", "idle-cached")[0]
first = one("memory", "idle-first-start")[0]
load = one("memory", "under-load")[0]
row(f"RSS idle, {idle['plugins']} plugins (cached start; first start {first['rss_mib']} MiB)",
    f"{idle['rss_mib']} MiB", "≤ 50 MiB", idle["rss_mib"] <= 50)
out.append(f"| RSS under load ({load['events_per_sec']:,.0f} events/s through `reshape`) | "
           f"{load['rss_mib']} MiB (peak {load['peak_rss_mib']} MiB) | (none) | |")

print(f"Machine: {cores} cores. Results: {sys.argv[1]}\n")
print("| measure | figure | target | met |\n|---|---|---|---|")
print("\n".join(out))
