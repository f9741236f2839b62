#!/usr/bin/env bash
# The main job on a fresh machine: install, build, start `rankserve serve` locally with 4 ranks
# (tensor parallel 2 x data parallel 2) on the built-in model, wait until it is ready, send prompts
# with rankserve-client (the OPT example's form, then streamed through the OpenAI API), stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec bash scripts/serve-demo.sh "$@"
