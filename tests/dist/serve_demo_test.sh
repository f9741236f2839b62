#!/usr/bin/env bash
# dist tier: the README's first command after its setup and build (scripts/serve-demo.sh) prints the
# built-in model's right answers through the NeMo form, the OPT form and the OpenAI stream, and the
# server drains and exits 0.
# Usage: serve_demo_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir=$1
build=$2
log=$(mktemp /tmp/rankserve-serve-demo-XXXXXX.log)
trap 'rm -f "$log"' EXIT
if ! RANKSERVE_BUILD=$build timeout 300 bash "$source_dir/scripts/serve-demo.sh" >"$log" 2>&1; then
  echo "serve_demo_test: scripts/serve-demo.sh failed; its output:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
# Whole lines: each prompt with the greedy continuation the built-in model was trained to give.
expected=(
  "1 2 3 4 5 6 7 8 9 10"
  "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
  "A B C D E F G H"
  "output: ['January February March April May June July']"
  "10 20 30 40 50 60 70 80 90"
  "x y x y x y x y x y"
  "serve-demo: the server drained and exited 0"
)
status=0
for line in "${expected[@]}"; do
  grep -Fx -- "$line" "$log" >/dev/null || { echo "serve_demo_test: no line '$line'" >&2; status=1; }
done
((status == 0)) || { echo "serve_demo_test: what it printed:" >&2; grep -v '^20[0-9][0-9]-' "$log" | tail -n 30 >&2; }
exit "$status"
