#!/usr/bin/env bash
# clang-format with the checked-in .clang-format over the project's C++ sources (core/, client/, commands/, launcher/, net/, runtime/,
# tests/, bench/). `--check` changes nothing and exits non-zero naming each file that is not formatted
# (run by scripts/test.sh); without it the files are formatted in place.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 'core/*.cpp' 'core/*.h' 'client/*.cpp' 'client/*.h' 'commands/*.cpp' 'commands/*.h' 'launcher/*.cpp' 'launcher/*.h' 'net/*.cpp' 'net/*.h' 'runtime/*.cpp' 'runtime/*.h' \
                                  'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h')
if [[ "${1:-}" == --check ]]; then
  clang-format --dry-run -Werror "${files[@]}"
  echo "format: ${#files[@]} files formatted as .clang-format says" >&2
else
  clang-format -i "${files[@]}"
fi
