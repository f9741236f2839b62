#!/usr/bin/env bash
# The sanitizer tier (run by scripts/test.sh): builds only the targets it runs, in their own trees.
#   build-asan (preset asan): unit, http and a dist subset under ASan + UBSan; any error or UB fails the test.
#   build-tsan (preset tsan): the http tier (the server's threads) and a serving case (scheduler, engine
#   thread, Gloo) under TSan, with tests/sanitizers/tsan.supp.
# Usage: scripts/sanitizers.sh [asan|tsan]... (default: both). Prints how long each build and run took.
set -euo pipefail
cd "$(dirname "$0")/.."
phases=("$@")
((${#phases[@]})) || phases=(asan tsan)
timed() {
  local start=$SECONDS
  "$@"
  echo "sanitizers: '$*' took $((SECONDS - start)) s" >&2
}
for phase in "${phases[@]}"; do
  case "$phase" in
    asan | tsan) ;;
    *) echo "sanitizers: unknown phase '$phase'; expected asan or tsan" >&2; exit 2 ;;
  esac
  cmake --preset "$phase" >/dev/null
  timed cmake --build --preset "$phase" -j "$(nproc)"
  timed ctest --preset "$phase"
  timed ctest --preset "$phase-dist"
done
