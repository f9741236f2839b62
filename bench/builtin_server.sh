# Sourced by the bench scripts: starts `rankserve serve` on random/125M (one rank, loopback,
# no metrics port) with the caller's extra flags, waits until it is ready, sets $url and $work (a
# temporary folder), and stops the server and removes $work on exit.
#   start_builtin_server [extra serve flags...]
work=$(mktemp -d)
server=
stop_builtin_server() {
  [[ -n $server ]] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap stop_builtin_server EXIT
start_builtin_server() {
  ./build/launcher/rankserve serve --model-path random/125M --gpus 1 --http-address 127.0.0.1 --http-port 0 --metrics-port -1 --grpc-port -1 --url-file "$work/url" \
    --log-level warn "$@" >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 600); do [[ -s $work/url ]] && break; sleep 0.2; done
  url=$(sed 's#http://[^:]*:#http://127.0.0.1:#' "$work/url")
  ./build/launcher/rankserve-client --url "$url" --wait-only --init-timeout-s 120 >/dev/null
}
