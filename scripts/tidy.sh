#!/usr/bin/env bash
# Runs clang-tidy with the checked-in .clang-tidy over the project's own sources (every .cpp in the build tree's
# compile_commands.json under launcher/, net/, runtime/, tests/, bench/). Exits non-zero on any finding.
# Usage: scripts/tidy.sh [build-dir] [file-regex]   (defaults: ./build, configured with the dev preset if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
filter=${2:-"$(pwd)/(launcher|net|runtime|tests|bench)/.*\.cpp$"}
[[ -f "$build/compile_commands.json" ]] || cmake --preset dev >/dev/null
# -quiet drops the per-file "N warnings generated" lines of system headers; findings still print.
exec run-clang-tidy-14 -p "$build" -j "$(nproc)" -quiet "$filter"
