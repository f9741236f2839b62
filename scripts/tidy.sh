#!/usr/bin/env bash
# Runs clang-tidy with the checked-in .clang-tidy over the project's own .cpp files (core/, client/, commands/, launcher/, net/, runtime/,
# tests/, bench/) from the build tree's compile_commands.json. Exits non-zero on any finding.
# Usage: scripts/tidy.sh [build-dir]   (default ./build, configured with the dev preset if it has no database)
#
# Left out: the sources that include libtorch's headers, directly or through a project header. clang 14 cannot
# parse libtorch 1.13's headers as C++20 (std::vector<c10::IValue> used while IValue is incomplete, which
# gcc accepts; pytorch/pytorch#93978), so those translation units are checked by gcc's warnings only.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -f "$build/compile_commands.json" ]] || cmake --preset dev >/dev/null

# The headers that reach libtorch, to a fixed point (a header including such a header reaches it too).
reach='#include <(ATen|c10|torch)/'
while true; do
  mapfile -t headers < <(git grep -lE "$reach" -- '*.h')
  next='#include <(ATen|c10|torch)/'
  for h in "${headers[@]}"; do next+="|#include \"${h//./\\.}\""; done
  [[ "$next" == "$reach" ]] && break
  reach=$next
done
mapfile -t torch_sources < <(git grep -lE "$reach" -- '*.cpp')
mapfile -t sources < <(git ls-files 'core/*.cpp' 'client/*.cpp' 'commands/*.cpp' 'launcher/*.cpp' 'net/*.cpp' 'runtime/*.cpp' 'tests/*.cpp' 'bench/*.cpp' |
                       grep -vxF -f <(printf '%s\n' "${torch_sources[@]}"))
echo "tidy: ${#sources[@]} files (${#torch_sources[@]} that include libtorch left out)" >&2
regex="^$(pwd)/($(printf '%s|' "${sources[@]//./\\.}" | sed 's/|$//'))\$"
# -quiet drops the per-file "N warnings generated" lines of system headers; findings still print.
exec run-clang-tidy-14 -p "$build" -j "$(nproc)" -quiet "$regex"
