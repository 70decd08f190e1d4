# Shared by the bench scripts (sourced, not run): a scratch folder, a free
# loopback port, the trivial handler, and a daemon started and stopped.
#
# SWITCHYARD_BIN names another daemon binary to measure (to compare two
# builds); the default is target/release/switchyard.
#
# After `bench_init`: $dir is a temporary folder (removed on exit) with
# plugins/trivial.wat in it, $port a free loopback port. `start_daemon`
# runs target/release/switchyard on $dir/router.toml and waits until it
# answers /healthz; its pid is $pid. `stop_daemon` ends it. `write_config`
# writes the router.toml.

bench_init() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    dir="$(mktemp -d)"
    pid=""
    trap 'stop_daemon; rm -rf "$dir"' EXIT
    mkdir -p "$dir/plugins" bench/results
    cat >"$dir/plugins/trivial.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param i32 i32) (result i32) (i32.const 0)))
WAT
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
}

start_daemon() {
    SWITCHYARD_LOG=warn "${SWITCHYARD_BIN:-target/release/switchyard}" run --config "$dir/router.toml" &
    pid=$!
    local _
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "the daemon exited at start-up" >&2; exit 1; }
        sleep 0.1
    done
    echo "the daemon did not answer /healthz within 30 s" >&2
    exit 1
}

stop_daemon() {
    if [ -n "${pid:-}" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}

# Writes $dir/router.toml: the daemon's common settings (listen on $port,
# a queue of 100,000, plugins from $dir/plugins), then what is on stdin.
write_config() {
    {
        cat <<TOML
[server]
listen = "127.0.0.1:$port"
queue = 100000

[plugins]
dir = "plugins"

[dead_letter]
path = "dead.ndjson"

TOML
        cat
    } >"$dir/router.toml"
}

# The results file of a script: bench/results/<kind>-<UTC time>.ndjson.
results_file() {
    printf 'bench/results/%s-%s.ndjson' "$1" "$(date -u +%Y%m%dT%H%M%SZ)"
}
