#!/usr/bin/env bash
# The GPU benchmarks on GPU 0, each printing a ratio measured in the same run (bench/gpu_bench.py says how):
# batch-1 decode of random/1.3B in bf16 against the HBM bound, batch 32 against batch 1, against Hugging Face
# transformers generate() on the same shape, and load GB/s against the file read bandwidth. Also prints the
# HBM copy bandwidth as the CUDA runtime measures it (build/bench/hbm_copy, when nvcc built it). Not a test.
#   bash bench/gpu_bench.sh [build dir, default build] [new tokens at batch 1, default 512]
# Needs python3 with CUDA torch and transformers (PYTHON overrides), as on the lent GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-512}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -x "$build/bench/hbm_copy" ]]; then "$build/bench/hbm_copy" 2; fi
PYTHONUNBUFFERED=1 "$python" bench/gpu_bench.py "$build" "$work" "$n"
