#!/usr/bin/env bash
# HTTP overhead of rankserve's front end against nginx, measured in the same run with wrk (same
# threads, connections and duration): requests/s and p50/p99 latency on /v2/health/ready, on an
# infer of one token (the built-in model, one rank), and nginx serving a small static file.
# Prints the ratio rankserve/nginx for requests/s (target: health >= 0.5). Not a test.
#   bash bench/http_bench.sh [seconds per run, default 5] [connections, default 32]
# RANKSERVE_BENCH_ARGS: extra `rankserve serve` flags (e.g. "--cpu-threads 1").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
connections=${2:-32}
bin=./build/launcher/rankserve
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx: a small static file, one worker per core, logging off.
nginx_port=$(free_port)
mkdir -p "$work/www" "$work/nginx"
chmod 755 "$work" "$work/www"  # nginx workers run as an unprivileged user
printf '{"ready":true}' >"$work/www/ready"
chmod 644 "$work/www/ready"
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx" &
pids+=($!)

"$bin" serve --model-path random/125M --gpus 1 --http-address 127.0.0.1 --http-port 0 --metrics-port -1 --grpc-port -1 --url-file "$work/url" \
  --log-level warn --max-queue-size 4096 ${RANKSERVE_BENCH_ARGS:-} >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do [[ -s $work/url ]] && break; sleep 0.2; done
url=$(sed 's#http://[^:]*:#http://127.0.0.1:#' "$work/url")
./build/launcher/rankserve-client --url "$url" --wait-only --init-timeout-s 120 >/dev/null

cat >"$work/infer.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"input","datatype":"BYTES","shape":[1,1],"data":["Hi"]},{"name":"output_length","datatype":"INT64","shape":[1,1],"data":[1]}]}'
LUA

# One wrk run: prints "requests/s p50 p99" (latencies as wrk spells them).
measure() {
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" >"$work/wrk.out" 2>&1
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "bench: non-2xx answers: $(grep Non-2xx "$work/wrk.out")" >&2; fi
  echo "$rps $p50 $p99"
}

read -r nginx_rps nginx_p50 nginx_p99 < <(measure "http://127.0.0.1:$nginx_port/ready")
read -r ready_rps ready_p50 ready_p99 < <(measure "$url/v2/health/ready")
read -r infer_rps infer_p50 infer_p99 < <(measure -s "$work/infer.lua" "$url/v2/models/OPT/infer")

printf '%-34s %12s %10s %10s\n' "target ($connections connections, ${seconds}s)" "requests/s" "p50" "p99"
printf '%-34s %12s %10s %10s\n' "nginx static file" "$nginx_rps" "$nginx_p50" "$nginx_p99"
printf '%-34s %12s %10s %10s\n' "rankserve /v2/health/ready" "$ready_rps" "$ready_p50" "$ready_p99"
printf '%-34s %12s %10s %10s\n' "rankserve infer, 1 token (125M)" "$infer_rps" "$infer_p50" "$infer_p99"
python3 -c "print(f'ratio health/nginx = {$ready_rps / $nginx_rps:.2f} (target >= 0.50)')"
