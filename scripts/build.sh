#!/usr/bin/env bash
# Configures (preset dev: RelWithDebInfo, Ninja) and builds rankserve into ./build. Used by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake --preset dev
fi
cmake --build build -j "$(nproc)"
