#!/usr/bin/env bash
# gRPC ModelInfer against HTTP KServe infer, same server, same run (bench/grpc_bench.cpp): a 1-token
# infer of the built-in model (GPT contract, one rank), C clients on connections of their own.
# Prints each transport's requests/s, p50 and p99 and the ratio gRPC / HTTP (target >= 1).
#   bench/grpc_bench.sh [seconds per round=5] [clients=4] [rounds=3] [own|shared: a gRPC channel per client or one for all]
# RANKSERVE_BENCH_SERVE_ARGS: more `rankserve serve` flags (e.g. --cpu-threads 1).
# RANKSERVE_BENCH_SERVER_CPUS, RANKSERVE_BENCH_CLIENT_CPUS: CPU lists (taskset -c) for the server and the
# clients, e.g. 1 and 0: the client libraries' CPU (grpc++ spends 3-6x Beast's per call) then stays off the
# server's cores, as with clients on other hosts. Unset: both share every CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/launcher
work=$(mktemp -d)
server=
cleanup() {
  [[ -n $server ]] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cmake --build build --target grpc_bench rankserve >/dev/null
server_pin=() client_pin=()
[[ -n ${RANKSERVE_BENCH_SERVER_CPUS:-} ]] && server_pin=(taskset -c "$RANKSERVE_BENCH_SERVER_CPUS")
[[ -n ${RANKSERVE_BENCH_CLIENT_CPUS:-} ]] && client_pin=(taskset -c "$RANKSERVE_BENCH_CLIENT_CPUS")
"${server_pin[@]}" "$bin/rankserve" serve --gpus 1 --http-address 127.0.0.1 --http-port 0 --metrics-port -1 --grpc-address 127.0.0.1 \
  --grpc-port 0 --max-queue-size 4096 --url-file "$work/url" ${RANKSERVE_BENCH_SERVE_ARGS:-} >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 900); do [[ -s $work/url ]] && break; sleep 0.2; done
[[ -s $work/url ]] || { echo "grpc_bench: the server never became ready; log: $work/server.log" >&2; tail "$work/server.log" >&2; exit 1; }
http_port=$(sed 's#.*:##' "$work/url")
grpc_port=$(grep -o 'Server grpc url grpc://[^ ]*' "$work/server.log" | sed 's#.*:##')
body='{"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["1 2 3 4 5"]},{"name":"max_length","datatype":"INT32","shape":[1,1],"data":[1]}]}'
"${client_pin[@]}" build/bench/grpc_bench 127.0.0.1 "$http_port" "$grpc_port" GPT "$body" "${1:-5}" "${2:-4}" "${3:-3}" both "${4:-own}"
