#!/usr/bin/env bash
# net/ and the client need no libtorch: a tree configured with RANKSERVE_WITH_RUNTIME=OFF (and libtorch
# made unfindable) holds rankserve-client and nothing that names libtorch, PMIx or yaml-cpp, and the
# full build's rankserve-client links none of them.
#   facade_build_test.sh SOURCE_DIR CLIENT_BINARY
set -euo pipefail
source_dir=${1:?usage: facade_build_test.sh SOURCE_DIR CLIENT_BINARY}
client=${2:?usage: facade_build_test.sh SOURCE_DIR CLIENT_BINARY}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
if ! cmake -S "$source_dir" -B "$tree" -G Ninja -DRANKSERVE_WITH_RUNTIME=OFF -DTorch_DIR=/nonexistent \
  -DCMAKE_PREFIX_PATH=/nonexistent >"$tree/configure.log" 2>&1; then
  echo "facade_build_test: configuring with RANKSERVE_WITH_RUNTIME=OFF failed:" >&2
  tail -20 "$tree/configure.log" >&2
  exit 1
fi
ninja -C "$tree" -t targets all | grep '^launcher/rankserve-client:' >/dev/null ||
  { echo "facade_build_test: the torch-free tree has no rankserve-client target" >&2; exit 1; }
if grep -nE 'libtorch|libc10|/torch/|pmix|yaml-cpp' "$tree/build.ninja" >"$tree/hits"; then
  echo "facade_build_test: the torch-free tree still names libtorch, PMIx or yaml-cpp:" >&2
  head -5 "$tree/hits" >&2
  exit 1
fi
if ldd "$client" | grep -E 'libtorch|libc10|libpmix|libyaml' >"$tree/linked"; then
  echo "facade_build_test: $client links the runtime's libraries:" >&2
  cat "$tree/linked" >&2
  exit 1
fi
echo "facade_build_test: ok (net/ and rankserve-client configure and link without libtorch)"
