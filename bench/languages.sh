#!/usr/bin/env bash
# Load time of each language's trivial handler through the daemon (issue
# 14): for every built plugins/dist/conformance_<lang>.wasm, the daemon is
# started with that plugin alone, `runs` times with an empty state folder
# (the first load compiles) and `runs` times with the compile cache it
# left (a restart), and timed from spawn to its first 200 from /readyz
# (once its plugins are loaded and its workers run). The same start with no
# plugin at all is the baseline to subtract.
#
#   bench/languages.sh [runs]      (default 3; medians are reported)
#
# One JSON line per case goes to stdout and to
# bench/results/languages-<date>.ndjson. The per-call times and RSS per
# instance are `cargo bench -p switchyard --bench languages`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init
runs="${1:-3}"
out="$(results_file languages)"

cargo build --release -q -p switchyard
rm -f "$dir/plugins/trivial.wat"

# Milliseconds from spawn to the first 200 from /readyz.
start_ms() {
    local t0 t1
    t0="$(date +%s%N)"
    start_daemon
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.005; done
    t1="$(date +%s%N)"
    curl -fs "http://127.0.0.1:$port/v1/plugins" | grep -q '"sha256"' || [ -z "$(ls "$dir/plugins")" ] ||
        { echo "the plugin did not load" >&2; exit 1; }
    stop_daemon
    echo $(((t1 - t0) / 1000000))
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

measure() { # lang plugin-file-or-empty
    local lang="$1" file="$2" cold=() cached=() i
    rm -f "$dir"/plugins/*
    [ -n "$file" ] && cp "$file" "$dir/plugins/"
    write_config <<TOML
[state]
dir = "state"
TOML
    # write_config's [plugins] has no compile_timeout: large components
    # need longer than the 10 s default on a busy machine.
    sed -i 's/^dir = "plugins"$/dir = "plugins"\nmax_file_size = "64MiB"\ncompile_timeout = "120s"/' "$dir/router.toml"
    for i in $(seq "$runs"); do
        rm -rf "$dir/state"
        cold+=("$(start_ms)")
    done
    for i in $(seq "$runs"); do
        cached+=("$(start_ms)")
    done
    printf '{"bench":"languages-load","lang":"%s","bytes":%s,"cold_start_ms":%s,"cached_start_ms":%s,"runs":%s}\n' \
        "$lang" "$([ -n "$file" ] && wc -c <"$file" || echo 0)" "$(median "${cold[@]}")" \
        "$(median "${cached[@]}")" "$runs" | tee -a "$out"
}

measure none ""
for lang in rust go python js c zig; do
    file="plugins/dist/conformance_$lang.wasm"
    [ -f "$file" ] && measure "$lang" "$file"
done
echo "results: $out" >&2
