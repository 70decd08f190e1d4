"""Median of each figure over the runs in a queue-storage results file, as
two Markdown tables (the batch case and the concurrent case)."""
import json
import statistics
import sys

lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
stores = list(dict.fromkeys(l["store"] for l in lines))


def med(case, store, key, sub=None):
    vals = [l[key] if sub is None else l[key][sub] for l in lines if l["case"] == case and l["store"] == store]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


runs = sum(1 for l in lines if l["case"] == "batch" and l["store"] == stores[0])
base = med("batch", "none", "cpu_us_per_event")
print(f"batch: {lines[0]['events']:,} events of {lines[0]['payload_bytes_mean']:.0f} bytes, 1,000 per append, released 256 at a time (median of {runs})\n")
print("| store | append events/s | consume events/s | CPU µs/event (append + consume) | extra over `none` | bytes written/event | on disk/event after append | left on disk after consume |")
print("|---|---|---|---|---|---|---|---|")
for s in stores:
    if med("batch", s, "events") is None:
        continue
    cpu = med("batch", s, "cpu_us_per_event")
    extra = "-" if base is None or s == "none" else fmt(cpu - base, 2)
    print(f"| {s} | {fmt(med('batch', s, 'append_events_per_sec'))} | {fmt(med('batch', s, 'consume_events_per_sec'))} "
          f"| {fmt(med('batch', s, 'append_cpu_us_per_event'), 2)} + {fmt(med('batch', s, 'consume_cpu_us_per_event'), 2)} = {fmt(cpu, 2)} "
          f"| {extra} | {fmt(med('batch', s, 'write_bytes_per_event'), 1)} | {fmt(med('batch', s, 'disk_bytes_per_event_after_append'), 1)} "
          f"| {fmt(med('batch', s, 'disk_bytes_left_after_consume') / 1048576, 1)} MiB |")
conc = [l for l in lines if l["case"] == "concurrent"]
if conc:
    none_rate = med("concurrent", "none", "events_per_sec")
    print(f"\nconcurrent: {conc[0]['producers']} producers, one event each, waiting for durability, {conc[0]['seconds']} s (median of {runs})\n")
    print("| store | events/s | ÷ `none` | p50 | p99 | mean group | CPU µs/event | bytes written/event |")
    print("|---|---|---|---|---|---|---|---|")
    for s in stores:
        rate = med("concurrent", s, "events_per_sec")
        if rate is None:
            continue
        ratio = "-" if not none_rate or s == "none" else f"{rate / none_rate:.2f}"
        print(f"| {s} | {fmt(rate)} | {ratio} | {fmt(med('concurrent', s, 'latency_us', 'p50') / 1000, 2)} ms "
              f"| {fmt(med('concurrent', s, 'latency_us', 'p99') / 1000, 2)} ms | {fmt(med('concurrent', s, 'mean_group'), 1)} "
              f"| {fmt(med('concurrent', s, 'cpu_us_per_event'), 1)} | {fmt(med('concurrent', s, 'write_bytes_per_event'), 1)} |")
