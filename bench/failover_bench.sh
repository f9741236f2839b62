#!/usr/bin/env bash
# Failover: how fast a multi-rank server stops after kill -9 of one rank under load. Starts `rankserve
# serve` (the built-in model, local workers), runs OpenAI and KServe requests, streamed and not, kills
# one worker rank once the streams have started, and prints the seconds until every request was
# answered and until every rank and the launcher were gone, with the ratio to the 3 s target
# (docs/serving.md), and how many answers named the dead rank. Not a test.
#   bash bench/failover_bench.sh [RUNS] [RANK] [SERVE FLAGS...]   (defaults: 3 runs, rank 3, --gpus 4 --tp 2)
# RANKSERVE_BIN=path/to/rankserve measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
victim=${2:-3}
shift $(($# < 2 ? $# : 2))
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(--gpus 4 --tp 2)
bin=${RANKSERVE_BIN:-./build/launcher/rankserve}  # another build to compare: RANKSERVE_BIN=...
target_s=3
work=$(mktemp -d)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
# Running and not a zombie (the launcher and the clients are this shell's children until waited for).
alive() { local state; state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [ -n "$state" ] && [ "$state" != Z ]; }
any_alive() { for p in "$@"; do alive "$p" && return 0; done; return 1; }
wait_until() {  # SECONDS COMMAND...: polls COMMAND until it succeeds or SECONDS pass
  local deadline=$(($(date +%s) + $1)); shift
  until "$@"; do [ "$(date +%s)" -lt $deadline ] || return 1; sleep 0.1; done
}

openai='{"model":"OPT","prompt":"1 2 3","max_tokens":300,"ignore_eos":true'
kserve='{"text_input":"1 2 3","parameters":{"max_tokens":300}}'
printf '%-4s %-5s %-24s %9s %9s %7s %s\n' run rank layout answered gone "of 3 s" "answers naming the rank"
for run in $(seq 1 "$runs"); do
  rm -f "$work"/url "$work"/req.*
  "$bin" serve --model-path random/125M --http-port 0 --metrics-port -1 --grpc-port -1 --url-file "$work/url" --timeout 60 "${flags[@]}" >"$work/server.log" 2>&1 &
  launcher=$!
  pids=("$launcher")
  wait_until 180 test -s "$work/url" || { echo "no server url; log: $work/server.log" >&2; tail "$work/server.log" >&2; exit 1; }
  url=$(cat "$work/url")
  wait_until 180 curl -sf -o /dev/null "$url/v2/health/ready" || { echo "never ready" >&2; exit 1; }
  clients=()
  for i in 1 2; do
    for req in "v1/completions|$openai}" "v1/completions|$openai,\"stream\":true}" "v2/models/OPT/generate|$kserve" \
               "v2/models/OPT/generate_stream|$kserve"; do
      n=${#clients[@]}
      curl -sS -N --max-time 60 -H 'Content-Type: application/json' -d "${req#*|}" "$url/${req%%|*}" >"$work/req.$n" 2>&1 &
      clients+=($!)
    done
  done
  pids+=("${clients[@]}")
  wait_until 60 bash -c "for f in $work/req.1 $work/req.3 $work/req.5 $work/req.7; do grep -q 'data: ' \$f || exit 1; done"
  mapfile -t workers < <(pgrep -P "$launcher")
  pids+=("${workers[@]}")
  killed=$(now)
  kill -9 "${workers[$victim]}"
  answered="" gone=""
  deadline=$(($(date +%s) + 30))
  while [ -z "$answered" ] || [ -z "$gone" ]; do
    [ -z "$answered" ] && ! any_alive "${clients[@]}" && answered=$(now)
    [ -z "$gone" ] && ! any_alive "$launcher" "${workers[@]}" && gone=$(now)
    [ "$(date +%s)" -lt $deadline ] || break
    sleep 0.01
  done
  wait "$launcher" || true
  named=$(grep -l "rank $victim (host " "$work"/req.* | wc -l)
  python3 - "$run" "$victim" "${flags[*]}" "$killed" "${answered:-nan}" "${gone:-nan}" "$target_s" "$named" "${#clients[@]}" <<'PY'
import sys
run, rank, layout, killed, answered, gone, target, named, total = sys.argv[1:]
a, g = float(answered) - float(killed), float(gone) - float(killed)
print(f"{run:<4} {rank:<5} {layout:<24} {a:8.2f}s {g:8.2f}s {g / float(target):7.2f} {named}/{total}")
PY
done
