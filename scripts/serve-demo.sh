#!/usr/bin/env bash
# Starts the server on the built-in model (random/125M weights, GPT-2 tokenizer: the text is
# gibberish, the plumbing is real), asks it two questions with rankserve-client and stops it with
# SIGTERM (a drain). Extra arguments go to `rankserve serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/launcher
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
"$bin/rankserve-client" --server-url "$url" --init-timeout-s 300 --input "The capital of Poland is" --output-length 8
"$bin/rankserve-client" --url "$url" --protocol openai --stream --prompts "Tell me about Slurm:" --output-len 16
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
echo "serve-demo: the server drained and exited 0"
