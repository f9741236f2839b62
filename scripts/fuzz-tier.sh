#!/usr/bin/env bash
# The fuzz tier: configures ./build-fuzz with clang (every target with -fsanitize=fuzzer-no-link,address,undefined,
# see cmake/fuzzing.cmake), builds the libFuzzer targets in tests/fuzz and runs ctest's `fuzz` label there: each
# target over its corpus, then a fixed number of mutations from seed 1 (about a minute for all of them on 2 cores).
# The configure line, for use by hand (or a preset):
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
#         -DRANKSERVE_BUILD_FUZZERS=ON -DRANKSERVE_BUILD_TESTS=OFF -DRANKSERVE_WITH_CUDA=OFF
# Extra arguments go to ctest (e.g. -R kserve). bench/fuzz.sh runs every target for longer.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  cmake -S . -B build-fuzz "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
        -DRANKSERVE_BUILD_FUZZERS=ON -DRANKSERVE_BUILD_TESTS=OFF -DRANKSERVE_WITH_CUDA=OFF
fi
targets=$(sed -n 's/^rankserve_fuzzer(\([a-z_]*\) .*/\1/p' tests/fuzz/CMakeLists.txt)
# shellcheck disable=SC2086  # one word per target
cmake --build build-fuzz -j "$(nproc)" --target $targets
cd build-fuzz
ctest --output-on-failure -L '^fuzz$' "$@"
