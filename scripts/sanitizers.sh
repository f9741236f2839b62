#!/usr/bin/env bash
# The sanitizer tier (run by scripts/test.sh): builds only the targets it runs, each tree with its preset.
#   asan (build-asan): unit, http and a dist subset (serving, damaged checkpoints) under ASan + UBSan; any
#                      error, leak or undefined behaviour fails the test.
#   tsan (build-tsan): the http tier (the server's threads) under TSan, with tests/sanitizers/tsan.supp.
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
    asan) tests=(asan asan-dist) ;;
    tsan) tests=(tsan) ;;
    *) echo "sanitizers: unknown phase '$phase'; expected asan or tsan" >&2; exit 2 ;;
  esac
  cmake --preset "$phase" >/dev/null
  timed cmake --build --preset "$phase" -j "$(nproc)"
  for t in "${tests[@]}"; do timed ctest --preset "$t"; done
done
