#!/usr/bin/env bash
# Fails when a source file crosses a forbidden edge of the module graph (docs/architecture.md):
#   core/          the bottom layer: includes only core/, no libtorch
#   net/           includes only net/ and core/, no libtorch, no MPI/PMIx/Slurm
#   runtime/       includes neither net/ nor launcher/ nor commands/, no MPI/PMIx/Slurm, no HTTP (Boost.Beast)
#   client/        includes only client/, net/ and core/, no libtorch
#   launcher/      includes no commands/ (the commands sit on top of every module)
#   environment    only launcher/ reads it (getenv, secure_getenv, environ)
#   flags          core/ and runtime/ name no command-line flag (--name) in a string: an Error names the
#                  setting in the runtime's words with Error::setting(); the launcher maps it to its flag
#   the build      the product's CMake files (core/, runtime/, net/, client/, launcher/, commands/) take nothing from tests/
# Prints every violation as FILE:LINE: rule, and exits 1 when there is one.
#   scripts/check-layers.sh [ROOT=the repository]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
violations=0

sources() {  # sources DIR...: the C++ sources under the folders that exist (not npm packages: bench/llama's llama.cpp)
  local dirs=()
  for d in "$@"; do [[ -d $d ]] && dirs+=("$d"); done
  ((${#dirs[@]})) || return 0
  find "${dirs[@]}" -path '*/node_modules' -prune -o -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print | sort
}

# forbid RULE REGEX FILE...: every line of FILE... matching REGEX is a violation of RULE.
forbid() {
  local rule=$1 regex=$2
  shift 2
  (($#)) || return 0
  local hits
  hits=$(grep -nHE "$regex" "$@" || true)
  if [[ -n $hits ]]; then
    while IFS= read -r hit; do echo "${hit%%:*}:$(cut -d: -f2 <<<"$hit"): $rule" >&2; done <<<"$hits"
    violations=$((violations + $(wc -l <<<"$hits")))
  fi
}

torch='^\s*#\s*include\s*<(torch|ATen|c10)/'
cluster='^\s*#\s*include\s*[<"](mpi\.h|pmix\.h|pmix/|slurm/)'

mapfile -t core < <(sources core)
forbid "core includes only core" '^\s*#\s*include\s*"(net|launcher|commands|client|runtime)/' "${core[@]}"
forbid "core does not see libtorch" "$torch" "${core[@]}"

mapfile -t net < <(sources net)
forbid "net includes only net and core" '^\s*#\s*include\s*"(launcher|commands|client|runtime)/' "${net[@]}"
forbid "net does not see libtorch" "$torch" "${net[@]}"
forbid "net does not see MPI, PMIx or Slurm" "$cluster" "${net[@]}"

mapfile -t runtime < <(sources runtime)
forbid "runtime does not see net, launcher or commands" '^\s*#\s*include\s*"(net|launcher|commands|client)/' "${runtime[@]}"
forbid "runtime does not see MPI, PMIx or Slurm" "$cluster" "${runtime[@]}"
forbid "runtime does not see HTTP" '^\s*#\s*include\s*<boost/beast' "${runtime[@]}"

# A string literal holding --<letter>, on a line whose code before it has no // comment.
flag_in_string='^([^/"]|/[^/"]|"([^"\\]|\\.)*")*"([^"\\]|\\.)*--[a-zA-Z]'
forbid "runtime and core name no command-line flag (tag the Error with its Setting)" "$flag_in_string" "${runtime[@]}" "${core[@]}"

mapfile -t client < <(sources client)
forbid "the client includes only client, net and core" '^\s*#\s*include\s*"(launcher|commands|runtime)/' "${client[@]}"

mapfile -t launcher < <(sources launcher)
forbid "launcher does not see commands" '^\s*#\s*include\s*"commands/' "${launcher[@]}"
forbid "the client does not see libtorch" "$torch" "${client[@]}"

mapfile -t not_launcher < <(sources core runtime net client commands bench)
forbid "only launcher/ reads the environment" '(\bgetenv\s*\(|\bsecure_getenv\s*\(|\benviron\b)' "${not_launcher[@]}"

mapfile -t product_cmake < <(find core runtime net client launcher commands -name CMakeLists.txt 2>/dev/null | sort)
forbid "the product's build takes nothing from tests/" '^[^#]*\btests/' "${product_cmake[@]}"

if ((violations)); then
  echo "check-layers: $violations include(s) or environment read(s) cross a forbidden edge (rules: scripts/check-layers.sh)" >&2
  exit 1
fi
echo "check-layers: every include keeps to the module graph (${#core[@]} core, ${#net[@]} net, ${#runtime[@]} runtime, ${#client[@]} client, ${#launcher[@]} launcher files)"
