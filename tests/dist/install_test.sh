#!/usr/bin/env bash
# dist tier: `cmake --install` puts a working rankserve under a prefix: the installed binary finds its
# vocabulary relative to itself and serves the built-in model; a lone copy of the binary fails with
# an error naming where it looked and --tokenizer.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d /tmp/rankserve-install-XXXXXX)
lone=$(mktemp -d /tmp/rankserve-lone-XXXXXX)/bin  # no share/ next to it
trap 'rm -rf "$prefix" "$(dirname "$lone")"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/rankserve bin/rankserve-client share/rankserve/gpt2/encoder.json share/rankserve/gpt2/vocab.bpe share/rankserve/builtin.nemo \
         share/doc/rankserve/README.md share/doc/rankserve/cli.md; do
  [[ -e $prefix/$f ]] || { echo "install_test: $f not installed under $prefix" >&2; exit 1; }
done
out=$("$prefix/bin/rankserve" generate --gpus 1 --model-path random/125M --prompt "1 2 3" --max-tokens 2 --json 2>&1) ||
  { echo "install_test: the installed binary failed: $out" >&2; exit 1; }
grep -q '"text"' <<<"$out" || { echo "install_test: no generation from the installed binary: $out" >&2; exit 1; }
out=$("$prefix/bin/rankserve" generate --gpus 1 --model-path builtin --prompt "1 2 3 4 5" --max-tokens 2 --json 2>&1) ||
  { echo "install_test: the installed built-in model failed: $out" >&2; exit 1; }
grep -q '"text":"1 2 3 4 5 6 7"' <<<"$out" || { echo "install_test: the installed built-in model did not count: $out" >&2; exit 1; }
"$prefix/bin/rankserve-client" --version | grep "^rankserve-client " >/dev/null || { echo "install_test: client --version" >&2; exit 1; }

mkdir "$lone"
cp "$prefix/bin/rankserve" "$lone/"
if out=$("$lone/rankserve" generate --gpus 1 --model-path random/125M --prompt "1 2 3" --max-tokens 2 2>&1); then
  echo "install_test: a lone copy without its vocabulary generated: $out" >&2; exit 1
fi
grep -q "share/rankserve/gpt2" <<<"$out" && grep -q -- "--tokenizer" <<<"$out" ||
  { echo "install_test: the lone copy's error names neither the folder nor --tokenizer: $out" >&2; exit 1; }
echo "install_test: passed"
