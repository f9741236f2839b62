#!/usr/bin/env bash
# rankserve's decode against a plain PyTorch eager model of the same shape (bench/eager_bench.py), in
# the same run and with the same threads: build/bench/decode_bench random/125M and eager_bench.py, each
# timing a decode step as (time of 1 + n tokens - time of 1 token) / n at batch 1, 8 and 32. Prints
# both outputs and a table of rankserve's tokens/s over eager's. Not a test.
#   bash bench/eager_bench.sh [new tokens, default 16] [intra-op threads, default: every core]
# Both sides: that many intra-op (OpenMP) threads; OpenBLAS's own thread pool at its default. Eager
# also runs with 1 intra-op thread (libtorch's own choice on the 2-core VM), where its OpenMP and
# OpenBLAS threads do not compete for the cores: the last column compares against that.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-16}
threads=${2:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/bench/decode_bench random/125M "$n" "$threads" | tee "$work/rankserve.txt"
# Debian's python3-torch: the python3 first on PATH may have no torch.
/usr/bin/python3 bench/eager_bench.py "$n" "$threads" | tee "$work/eager.txt"
/usr/bin/python3 bench/eager_bench.py "$n" 1 | tee "$work/eager1.txt"
echo
printf '%5s %16s %16s %10s %18s %10s\n' batch "rankserve tok/s" "eager tok/s" ratio "eager 1-thr tok/s" ratio
eager_rate() { awk -v b="$1" '$1 == "eager" && $3 == b ":" { print $4 }' "$2"; }
for batch in 1 8 32; do
  ours=$(awk -v b="$batch" '$1 == "batch" && $2 == b ":" { print $3 }' "$work/rankserve.txt")
  eager=$(eager_rate "$batch" "$work/eager.txt")
  eager1=$(eager_rate "$batch" "$work/eager1.txt")
  printf '%5s %16s %16s %10.2f %18s %10.2f\n' "$batch" "$ours" "$eager" "$(awk -v a="$ours" -v e="$eager" 'BEGIN { print a / e }')" \
    "$eager1" "$(awk -v a="$ours" -v e="$eager1" 'BEGIN { print a / e }')"
done
