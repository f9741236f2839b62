#!/usr/bin/env bash
# Runs every libFuzzer target of build-fuzz (scripts/fuzz-tier.sh builds it) for FUZZ_SECONDS each (default 60)
# and prints a table: executions, executions per second, coverage, and crash artifacts per target. A target
# stops at its first crash, leak, UB report, timeout or OOM; the input is kept under $FUZZ_WORK/<target>/artifacts.
# Each target starts from a copy of its committed corpus, so the repository is never written.
#   FUZZ_SECONDS=300 bench/fuzz.sh [target...]    # default: every target in tests/fuzz/CMakeLists.txt
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK:-build-fuzz/bench-fuzz}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(sed -n 's/^rankserve_fuzzer(\([a-z_]*\) .*/\1/p' tests/fuzz/CMakeLists.txt)
fi
printf '%-26s %12s %10s %8s %8s\n' target executions exec/s cov crashes
for t in "${targets[@]}"; do
  binary=build-fuzz/tests/fuzz/$t
  [[ -x $binary ]] || { echo "fuzz: $binary is not built (run scripts/fuzz-tier.sh first)" >&2; exit 1; }
  dict=$(sed -n "s/^rankserve_fuzzer($t .*DICT \([a-z.]*\).*/\1/p" tests/fuzz/CMakeLists.txt)
  rm -rf "${work:?}/$t"
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
  args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/")
  [[ -n $dict ]] && args+=(-dict=tests/fuzz/"$dict")
  nice "$binary" "${args[@]}" "$work/$t/corpus" >"$work/$t/log" 2>&1 || true
  units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/$t/log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "$work/$t/artifacts" -type f | wc -l)
  printf '%-26s %12s %10s %8s %8s\n' "$t" "${units:-?}" "${rate:-?}" "${cov:-?}" "$crashes"
  [[ $crashes -eq 0 ]] || find "$work/$t/artifacts" -type f -printf '    %p\n'
done
