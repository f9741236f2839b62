#!/usr/bin/env bash
# Shard loading against the file read bandwidth, measured in the same run: an OPT-125M-shaped
# checkpoint (safetensors, fp32, written by tests/reference/tiny_models.py's writer) is read once with
# dd (the page cache warm, as it is for rankserve after it), then loaded by `rankserve generate` at
# TP 1 and TP 2. Prints each rank's bytes read, seconds and GB/s, and GB/s as a fraction of dd's.
# With TP 2 each rank reads about half the bytes. Not a test.
#   bash bench/load_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work" <<'PY'
import json, sys, torch
sys.path.insert(0, "tests/reference")
import tiny_models as t
cfg = t.config_for("opt", 50272)
cfg.update(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, ffn_dim=3072, max_position_embeddings=2048,
           word_embed_proj_dim=768)
json.dump(cfg, open(f"{sys.argv[1]}/config.json", "w"))
t.save_safetensors(f"{sys.argv[1]}/model.safetensors", t.make_weights(cfg, torch.Generator().manual_seed(0)))
PY
file="$work/model.safetensors"
bytes=$(stat -c %s "$file")
cat "$file" >/dev/null  # warm the page cache
start=$(date +%s.%N)
dd if="$file" of=/dev/null bs=4M status=none
end=$(date +%s.%N)
file_gbs=$(python3 -c "print($bytes / 1e9 / ($end - $start))")
printf 'checkpoint %.1f MB; dd read %.2f GB/s\n' "$(python3 -c "print($bytes / 1e6)")" "$file_gbs"
printf '%-8s %-5s %10s %8s %8s %14s\n' layout rank "MB read" seconds GB/s "of dd's GB/s"
for layout in "--gpus 1" "--gpus 2 --tp 2"; do
  ./build/launcher/rankserve generate $layout --model-path "$work" --prompt-ids 2 --max-tokens 1 --log-all-ranks \
    --timeout 120 >"$work/log" 2>&1
  grep -o '\[r[0-9]*/[0-9]* [^]]*\] INFO loaded .*' "$work/log" | while read -r line; do
    rank=$(sed -E 's#^\[r([0-9]+)/.*#\1#' <<<"$line")
    mb=$(sed -E 's#.*read ([0-9.]+) MB from files.*#\1#' <<<"$line")
    seconds=$(sed -E 's#.* in ([0-9.]+) s \(.*#\1#' <<<"$line")
    gbs=$(sed -E 's#.*\(([0-9.]+) GB/s\).*#\1#' <<<"$line")
    printf '%-8s %-5s %10s %8s %8s %14.2f\n' "tp $(grep -o 'tp [0-9]' <<<"$layout" | cut -c4- || echo 1)" "$rank" "$mb" "$seconds" \
      "$gbs" "$(python3 -c "print($gbs / $file_gbs)")"
  done
done
