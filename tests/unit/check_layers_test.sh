#!/usr/bin/env bash
# scripts/check-layers.sh must report each forbidden edge, and a flag named in a runtime string: a
# tree holding one violation per rule is refused, naming every file and rule, and the same tree
# without them (flags in comments, a decrement) passes.
set -euo pipefail
check=$(cd "$(dirname "$0")/../.." && pwd)/scripts/check-layers.sh
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{net,core,runtime/model,launcher,client}
printf '#include "core/error.h"\n#include "net/b.h"\n' >"$tree/net/a.cpp"
printf '#include "core/log.h"\n// a comment may name "--tp"\nint f(int i) { return --i; }  // "--pp"\n' >"$tree/runtime/model/m.cpp"
printf '#include "core/error.h"\n' >"$tree/client/a.cpp"
printf 'const char* v = getenv("X");\n' >"$tree/launcher/env.cpp"
bash "$check" "$tree" >/dev/null || { echo "check_layers_test: a clean tree was refused" >&2; exit 1; }

printf '#include "runtime/model/gpt_model.h"\n#include <ATen/ATen.h>\n#include <pmix.h>\n' >"$tree/net/bad.cpp"
printf '#include "net/http_server.h"\n#include <boost/beast/http.hpp>\nauto p = std::getenv("HOME");\nauto m = fmt::format("{} x", "raise --timeout");\n' >"$tree/runtime/model/bad.cpp"
printf '#include "runtime/serving/scheduler.h"\n' >"$tree/core/bad.h"
printf '#include "runtime/engine.h"\n' >"$tree/client/bad.cpp"
printf '#include "commands/serve_command.h"\n' >"$tree/launcher/bad.cpp"
printf '# tests/ are not for the product\nset(V ${PROJECT_SOURCE_DIR}/tests/unit/x)\n' >"$tree/launcher/CMakeLists.txt"
if out=$(bash "$check" "$tree" 2>&1); then
  echo "check_layers_test: a tree with forbidden edges passed: $out" >&2
  exit 1
fi
expected=(
  "net/bad.cpp:1: net includes only net and core"
  "net/bad.cpp:2: net does not see libtorch"
  "net/bad.cpp:3: net does not see MPI, PMIx or Slurm"
  "runtime/model/bad.cpp:1: runtime does not see net, launcher or commands"
  "runtime/model/bad.cpp:2: runtime does not see HTTP"
  "runtime/model/bad.cpp:3: only launcher/ reads the environment"
  "runtime/model/bad.cpp:4: runtime and core name no command-line flag"
  "core/bad.h:1: core includes only core"
  "client/bad.cpp:1: the client includes only client, net and core"
  "launcher/bad.cpp:1: launcher does not see commands"
  "launcher/CMakeLists.txt:2: the product's build takes nothing from tests/"
  "check-layers: 11 include(s) or environment read(s) cross a forbidden edge"
)
for line in "${expected[@]}"; do
  grep -qF "$line" <<<"$out" || { echo "check_layers_test: missing '$line' in:"$'\n'"$out" >&2; exit 1; }
done
echo "check_layers_test: ok"
