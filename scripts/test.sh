#!/usr/bin/env bash
# Installs, builds and runs every test tier this machine can run: unit, http, dist, clients, grpc, k8s (the Kubernetes
# charts; their pods need root) and cluster (a real two-node Slurm cluster, which needs root), then the hardening
# tiers: clang-format kept (scripts/format.sh --check), clang-tidy over the sources
# (scripts/tidy.sh), a short run of every libFuzzer target (scripts/fuzz-tier.sh) and the sanitizer tier
# (scripts/sanitizers.sh: ASan + UBSan and TSan builds of the tiers that exercise the server).
# RANKSERVE_TEST_SANITIZERS=0 skips those three. The gpu tier runs only where a GPU is present (and the build
# is against CUDA libtorch: docs/gpu.md, scripts/gpu-check.sh). Extra
# arguments go to the first ctest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
labels="unit|http|dist|clients|grpc|k8s"   # k8s: its pod test skips itself when not root
if [[ $(id -u) -eq 0 ]]; then labels="$labels|cluster"; else echo "test: not root, skipping the cluster tier" >&2; fi
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  labels="$labels|gpu"
  # A build against Debian's CPU libtorch registers no gpu case (docs/gpu.md): say so rather than pass silently.
  (cd build && ctest -N -L '^gpu$' | grep 'Total Tests: [1-9]' >/dev/null) ||
    echo "test: a GPU is visible but this build has no gpu cases (CPU libtorch; docs/gpu.md builds against CUDA's)" >&2
fi
(cd build && ctest --output-on-failure -L "^($labels)\$" "$@")
if [[ "${RANKSERVE_TEST_SANITIZERS:-1}" != 0 ]]; then
  bash scripts/format.sh --check
  bash scripts/tidy.sh
  bash scripts/fuzz-tier.sh
  bash scripts/sanitizers.sh
fi
