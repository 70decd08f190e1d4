#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (issue 17) for a bounded time each and
# prints how many inputs each one executed.
#
#   bench/fuzz.sh                 every target, 600 s each (a long run)
#   bench/fuzz.sh 30              every target, 30 s each (what .ci/run does)
#   bench/fuzz.sh 3600 router_toml guest_boundary
#
# Needs cargo-fuzz (installed into target/tools/ when missing) and libFuzzer
# flags that only nightly rustc takes: RUSTC_BOOTSTRAP=1 lets the stable one
# take them. Builds without a sanitizer (-s none): the code is safe Rust, and
# the build and runs are several times faster. Set FUZZ_SANITIZER=address for
# an AddressSanitizer build. The corpus grows in fuzz/corpus/<target>
# (ignored by git), seeded from fuzz/seeds/<target>; a crash is saved under
# fuzz/artifacts/<target>/ and fails the script: turn it into a regression
# test in the ordinary suite.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"

if ! command -v cargo-fuzz >/dev/null; then
  if [ ! -x target/tools/bin/cargo-fuzz ]; then
    cargo install cargo-fuzz --locked --quiet --root target/tools
  fi
  export PATH="$PWD/target/tools/bin:$PATH"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -s "$sanitizer"
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/corpus/$t.log"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  if cargo fuzz run -s "$sanitizer" "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-22s %-6s %12s executions in %ss, corpus %s\n' "$t" "$result" "${execs:-?}" "$seconds" "$corpus"
  if [ "$result" != ok ]; then
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 || tail -40 "$log"
  fi
done
exit "$status"
