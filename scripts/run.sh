#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then run rankserve locally with 4 ranks
# (tensor parallel 2 x data parallel 2) and check the collectives on every group.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec ./build/launcher/rankserve check --gpus 4 --tp 2 --timeout 120 "$@"
