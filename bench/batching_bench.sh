#!/usr/bin/env bash
# Continuous batching: aggregate generated tokens/s with 1, 8 and 32 concurrent streaming clients on
# random/125M (one rank), each measured in the same run against the same server,
# with time to first token. Prints the ratio 32 clients / 1 client (target >= 6). Not a test.
#   bash bench/batching_bench.sh [seconds per level, default 20] [tokens per request, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
tokens=${2:-32}
source bench/builtin_server.sh
start_builtin_server
declare -A rate
printf '%-8s %12s %12s %12s %9s\n' clients tokens/s "TTFT p50 s" "TTFT p99 s" requests
for n in 1 8 32; do
  line=$(node bench/batching_load.mjs "$url" OPT "$n" "$seconds" "$tokens")
  read -r r p50 p99 count < <(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['tokens_per_s'], d['ttft_p50_s'], d['ttft_p99_s'], d['requests'])" "$line")
  rate[$n]=$r
  printf '%-8s %12.1f %12.3f %12.3f %9s\n' "$n" "$r" "$p50" "$p99" "$count"
done
python3 -c "print(f'ratio 32 clients / 1 client = {${rate[32]} / ${rate[1]}:.1f}x (target >= 6x)')"
