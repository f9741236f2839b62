#!/usr/bin/env bash
# Overload figures on random/125M (one rank, --max-queue-size 8), measured in one
# run: 429 with Retry-After beyond the queue, and 1,000 slow connections closed at the header timeout
# (30 s) while /v2/health/ready stays fast. Not a test.
#   bash bench/overload_bench.sh [concurrent requests, default 64] [slow connections, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
concurrent=${1:-64}
slow=${2:-1000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
source bench/builtin_server.sh
start_builtin_server --max-queue-size 8
python3 bench/overload_bench.py "$url" "$concurrent" "$slow"
