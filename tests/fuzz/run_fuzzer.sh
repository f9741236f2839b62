#!/usr/bin/env bash
# One short, deterministic libFuzzer run for ctest: run_fuzzer.sh BINARY SEED_CORPUS SCRATCH [libFuzzer flags...]
# Runs every seed, then the flags' mutations (-seed, -runs). New inputs go to SCRATCH (emptied first),
# never into the committed corpus; a crash, leak, UB report or hang leaves its input in SCRATCH/artifacts.
set -euo pipefail
binary=$1 corpus=$2 scratch=$3
shift 3
rm -rf "$scratch"
mkdir -p "$scratch/new" "$scratch/artifacts"
exec "$binary" -timeout=10 -print_final_stats=1 -artifact_prefix="$scratch/artifacts/" "$@" "$scratch/new" "$corpus"
