#!/usr/bin/env bash
# Starts the server on the built-in model (a small GPT trained at build time by scripts/train_builtin.py
# on counting, letters, weekdays, months and repeated motifs; NeMo format, served as GPT), asks it with
# rankserve-client in the NeMo example's form, the OPT example's form and streamed through the OpenAI
# API, and stops it with SIGTERM (a drain). Extra arguments go to `rankserve serve`; RANKSERVE_BUILD names
# the build folder (default ./build). tests/dist/serve_demo_test.sh checks its answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RANKSERVE_BUILD:-./build}/launcher
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/rankserve" serve --gpus 4 --tp 2 --http-port 0 --metrics-port -1 --url-file "$work/url" --timeout 120 "$@" \
  > >(tee "$work/server.log") 2>&1 &
server_pid=$!
for _ in $(seq 1 1500); do  # the URL file appears once the server is ready (every rank loaded)
  [[ -s $work/url ]] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "serve-demo: the server exited early" >&2; exit 1; }
  sleep 0.2
done
url=$(cat "$work/url")
"$bin/rankserve-client" --url "$url" --init-timeout-s 300 --prompts "1 2 3 4 5" "Monday Tuesday" "A B C" --output-len 5
"$bin/rankserve-client" --server-url "$url" --input "January February March" --output-length 4
"$bin/rankserve-client" --url "$url" --protocol openai --stream --prompts "10 20 30" "x y x y" --output-len 6
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
echo "serve-demo: the server drained and exited 0"
