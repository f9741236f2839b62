#!/usr/bin/python3
"""Independent reference for the runtime tests, written from the published model definitions
(Hugging Face modeling_gpt2.py / modeling_opt.py, Megatron-LM / NeMo legacy GPT) in plain PyTorch, with no code shared with rankserve.

  tiny_models.py make FAMILY DIR [V]   write a tiny seeded checkpoint (config.json + model.safetensors), vocabulary V
                                       FAMILY: gpt2 | gpt2-erf | opt | opt-postln (OPT-350m style: post-LN, project_in/out)
                                       | megatron[-erf][-untied][-kv][-legacy][-o2]: a Megatron GPT in plain per-head
                                       form (erf GELU, untied output layer, kv_channels != hidden/heads,
                                       megatron_legacy QKV order and megatron_amp_O2 bf16 weights when written as NeMo)
  tiny_models.py generate DIR IDS N    greedy generation without a KV cache; prints JSON (ids, log-probabilities and
                                       each step's margin: the chosen token's log-probability minus the runner-up's),
                                       one line per prompt when IDS holds several ("1,2;3")
  tiny_models.py shard DIR             split DIR/model.safetensors into two shards with an index file
  tiny_models.py make-bin DIR          replace DIR/model.safetensors by an old-style pytorch_model.bin (torch.save)
  tiny_models.py pack-nemo DIR FILE M  pack an extracted NeMo folder into FILE (M: tar or gz), as NeMo does
  tiny_models.py make-nemo SRC DST TP [PP]
                                       write the GPT-2 or megatron folder SRC as an extracted NeMo Megatron GPT
                                       checkpoint saved at tensor parallelism TP and pipeline parallelism PP
                                       (mp_rank_XX/ when TP > 1, tp_rank_XX_pp_rank_XXX/ when PP > 1)
"""
import json
import shutil
import math
import struct
import sys

import torch

VOCAB = 1000  # deliberately not a multiple of 128 x tp: exercises the padded vocabulary


def config_for(family, vocab=VOCAB):
    if family.startswith("megatron"):
        options = family.split("-")[1:]
        return {"model_type": "megatron", "hidden_size": 64, "num_layers": 4, "num_attention_heads": 4,
                "ffn_hidden_size": 160, "kv_channels": 24 if "kv" in options else None, "max_position_embeddings": 128,
                "vocab_size": vocab, "layernorm_epsilon": 1e-5, "gelu": "erf" if "erf" in options else "tanh",
                "tied": "untied" not in options, "megatron_legacy": "legacy" in options, "amp_o2": "o2" in options,
                "eos_token_id": vocab - 1}
    if family in ("gpt2", "gpt2-erf"):
        return {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": None, "n_positions": 128,
                "vocab_size": vocab, "layer_norm_epsilon": 1e-5,
                "activation_function": "gelu" if family == "gpt2-erf" else "gelu_new",
                "eos_token_id": vocab - 1}
    post = family == "opt-postln"
    return {"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 256,
            "max_position_embeddings": 128, "vocab_size": vocab, "do_layer_norm_before": not post,
            "word_embed_proj_dim": 32 if post else 64, "activation_function": "relu", "enable_bias": True,
            "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1}


def make_weights(cfg, gen):
    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    def ln(h):
        return 1.0 + rnd(h, scale=0.1), rnd(h, scale=0.1)

    w = {}
    if cfg["model_type"] == "megatron":
        h, f, v = cfg["hidden_size"], cfg["ffn_hidden_size"], cfg["vocab_size"]
        a = cfg["num_attention_heads"] * (cfg["kv_channels"] or h // cfg["num_attention_heads"])
        w["word_embeddings"] = rnd(v, h)
        w["position_embeddings"] = rnd(cfg["max_position_embeddings"], h)
        for i in range(cfg["num_layers"]):
            p = f"layers.{i}."
            w[p + "ln1.weight"], w[p + "ln1.bias"] = ln(h)
            for name in ("q", "k", "v"):  # Linear: [out, in]
                w[p + name + ".weight"], w[p + name + ".bias"] = rnd(a, h), rnd(a)
            w[p + "dense.weight"], w[p + "dense.bias"] = rnd(h, a), rnd(h)
            w[p + "ln2.weight"], w[p + "ln2.bias"] = ln(h)
            w[p + "fc1.weight"], w[p + "fc1.bias"] = rnd(f, h), rnd(f)
            w[p + "fc2.weight"], w[p + "fc2.bias"] = rnd(h, f), rnd(h)
        w["final_ln.weight"], w["final_ln.bias"] = ln(h)
        if not cfg["tied"]:
            w["output_layer"] = rnd(v, h)
        if cfg["amp_o2"]:  # saved in bfloat16: the reference computes with the same rounded values
            w = {name: t.bfloat16().float() for name, t in w.items()}
        return w
    if cfg["model_type"] == "gpt2":
        h, f = cfg["n_embd"], cfg["n_inner"] or 4 * cfg["n_embd"]
        w["transformer.wte.weight"] = rnd(cfg["vocab_size"], h)
        w["transformer.wpe.weight"] = rnd(cfg["n_positions"], h)
        for i in range(cfg["n_layer"]):
            p = f"transformer.h.{i}."
            w[p + "ln_1.weight"], w[p + "ln_1.bias"] = ln(h)
            w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = rnd(h, 3 * h), rnd(3 * h)  # Conv1D: [in, out]
            w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = rnd(h, h), rnd(h)
            w[p + "ln_2.weight"], w[p + "ln_2.bias"] = ln(h)
            w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = rnd(h, f), rnd(f)
            w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = rnd(f, h), rnd(h)
        w["transformer.ln_f.weight"], w["transformer.ln_f.bias"] = ln(h)
        return w
    h, f, e = cfg["hidden_size"], cfg["ffn_dim"], cfg["word_embed_proj_dim"]
    p0 = "model.decoder."
    w[p0 + "embed_tokens.weight"] = rnd(cfg["vocab_size"], e)
    w[p0 + "embed_positions.weight"] = rnd(cfg["max_position_embeddings"] + 2, h)
    if e != h:
        w[p0 + "project_in.weight"] = rnd(h, e)
        w[p0 + "project_out.weight"] = rnd(e, h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{p0}layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + f"self_attn.{name}.weight"], w[p + f"self_attn.{name}.bias"] = rnd(h, h), rnd(h)  # Linear: [out, in]
        w[p + "self_attn_layer_norm.weight"], w[p + "self_attn_layer_norm.bias"] = ln(h)
        w[p + "fc1.weight"], w[p + "fc1.bias"] = rnd(f, h), rnd(f)
        w[p + "fc2.weight"], w[p + "fc2.bias"] = rnd(h, f), rnd(h)
        w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"] = ln(h)
    if cfg["do_layer_norm_before"]:
        w[p0 + "final_layer_norm.weight"], w[p0 + "final_layer_norm.bias"] = ln(h)
    return w


def save_safetensors(path, tensors):
    """The safetensors layout, written by hand: u64 header size, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(info["shape"])
    return out


def attention(x, q, k, v, heads):
    n, h = x.shape
    d = h // heads
    q, k, v = (t.view(n, heads, d).transpose(0, 1) for t in (q, k, v))
    scores = q @ k.transpose(1, 2) / math.sqrt(d)
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    return (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(n, h)


def gpt2_forward(cfg, w, ids):
    """modeling_gpt2.GPT2LMHeadModel: pre-LN blocks, Conv1D (x @ W + b), gelu_new, tied head."""
    h, eps = cfg["n_embd"], cfg["layer_norm_epsilon"]
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][torch.arange(len(ids))]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        a = torch.nn.functional.layer_norm(x, (h,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(h, dim=1)
        x = x + attention(a, q, k, v, cfg["n_head"]) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = torch.nn.functional.layer_norm(x, (h,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        approximate = "none" if cfg.get("activation_function") == "gelu" else "tanh"
        m = torch.nn.functional.gelu(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate=approximate)
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = torch.nn.functional.layer_norm(x, (h,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return x @ w["transformer.wte.weight"].t()


def megatron_forward(cfg, w, ids):
    """Megatron-LM / NeMo legacy GPTModel: learned absolute positions, pre-LN ParallelTransformerLayer
    (residual from the layer input), attention over kv_channels per head scaled by kv_channels^-0.5,
    GELU (tanh approximation when fused, exact otherwise), final layer norm, output layer tied to the
    word embeddings unless share_embeddings_and_output_weights is false."""
    h, eps, heads = cfg["hidden_size"], cfg["layernorm_epsilon"], cfg["num_attention_heads"]
    d = cfg["kv_channels"] or h // heads
    lin = torch.nn.functional.linear
    ln = lambda t, name: torch.nn.functional.layer_norm(t, (h,), w[name + ".weight"], w[name + ".bias"], eps)
    n = len(ids)
    x = w["word_embeddings"][ids] + w["position_embeddings"][torch.arange(n)]
    for i in range(cfg["num_layers"]):
        p = f"layers.{i}."
        a = ln(x, p + "ln1")
        q, k, v = (lin(a, w[p + t + ".weight"], w[p + t + ".bias"]).view(n, heads, d).transpose(0, 1) for t in "qkv")
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1), float("-inf"))
        context = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(n, heads * d)
        x = x + lin(context, w[p + "dense.weight"], w[p + "dense.bias"])
        m = torch.nn.functional.gelu(lin(ln(x, p + "ln2"), w[p + "fc1.weight"], w[p + "fc1.bias"]),
                                     approximate="tanh" if cfg["gelu"] == "tanh" else "none")
        x = x + lin(m, w[p + "fc2.weight"], w[p + "fc2.bias"])
    x = ln(x, "final_ln")
    return x @ (w["word_embeddings"] if cfg["tied"] else w["output_layer"]).t()


def opt_forward(cfg, w, ids):
    """modeling_opt.OPTForCausalLM: positions offset by 2, q scaled by head_dim^-0.5, relu,
    pre- or post-LN per do_layer_norm_before, project_in/out when word_embed_proj_dim != hidden."""
    h, p0, pre = cfg["hidden_size"], "model.decoder.", cfg["do_layer_norm_before"]
    lin = torch.nn.functional.linear
    ln = lambda t, name: torch.nn.functional.layer_norm(t, (h,), w[name + ".weight"], w[name + ".bias"], 1e-5)
    x = w[p0 + "embed_tokens.weight"][ids]
    if p0 + "project_in.weight" in w:
        x = lin(x, w[p0 + "project_in.weight"])
    x = x + w[p0 + "embed_positions.weight"][torch.arange(len(ids)) + 2]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{p0}layers.{i}."
        a = ln(x, p + "self_attn_layer_norm") if pre else x
        q, k, v = (lin(a, w[p + f"self_attn.{n}.weight"], w[p + f"self_attn.{n}.bias"]) for n in ("q_proj", "k_proj", "v_proj"))
        x = x + lin(attention(a, q, k, v, cfg["num_attention_heads"]), w[p + "self_attn.out_proj.weight"], w[p + "self_attn.out_proj.bias"])
        if not pre:
            x = ln(x, p + "self_attn_layer_norm")
        m = ln(x, p + "final_layer_norm") if pre else x
        m = lin(torch.relu(lin(m, w[p + "fc1.weight"], w[p + "fc1.bias"])), w[p + "fc2.weight"], w[p + "fc2.bias"])
        x = x + m
        if not pre:
            x = ln(x, p + "final_layer_norm")
    if pre:
        x = ln(x, p0 + "final_layer_norm")
    if p0 + "project_out.weight" in w:
        x = lin(x, w[p0 + "project_out.weight"])
    return x @ w[p0 + "embed_tokens.weight"].t()


def megatron_from_gpt2(cfg, w):
    """A GPT-2 checkpoint as the same Megatron GPT: Conv1D [in, out] weights transposed, c_attn split."""
    h = cfg["n_embd"]
    mc = {"model_type": "megatron", "hidden_size": h, "num_layers": cfg["n_layer"], "num_attention_heads": cfg["n_head"],
          "ffn_hidden_size": 4 * h, "kv_channels": None, "max_position_embeddings": cfg["n_positions"],
          "vocab_size": cfg["vocab_size"], "layernorm_epsilon": cfg["layer_norm_epsilon"],
          "gelu": "erf" if cfg.get("activation_function") == "gelu" else "tanh", "tied": True,
          "megatron_legacy": False, "amp_o2": False, "eos_token_id": cfg["eos_token_id"]}
    mw = {"word_embeddings": w["transformer.wte.weight"], "position_embeddings": w["transformer.wpe.weight"],
          "final_ln.weight": w["transformer.ln_f.weight"], "final_ln.bias": w["transformer.ln_f.bias"]}
    for i in range(cfg["n_layer"]):
        s, t = f"transformer.h.{i}.", f"layers.{i}."
        for part, name in enumerate("qkv"):
            mw[t + name + ".weight"] = w[s + "attn.c_attn.weight"].t()[part * h:(part + 1) * h]
            mw[t + name + ".bias"] = w[s + "attn.c_attn.bias"][part * h:(part + 1) * h]
        for a, b in (("ln1", "ln_1"), ("ln2", "ln_2")):
            mw[t + a + ".weight"], mw[t + a + ".bias"] = w[s + b + ".weight"], w[s + b + ".bias"]
        for a, b in (("dense", "attn.c_proj"), ("fc1", "mlp.c_fc"), ("fc2", "mlp.c_proj")):
            mw[t + a + ".weight"], mw[t + a + ".bias"] = w[s + b + ".weight"].t(), w[s + b + ".bias"]
    return mc, mw


def make_nemo(src, dst, tp, pp):
    """NeMo legacy Megatron GPT layout (megatron_gpt_model / language_model), as NeMo saves it: Linear
    weights [out, in] split Megatron-style across TP ranks; fused QKV rows ordered (head, {q,k,v}, dim)
    within each TP shard, or ({q,k,v}, head, dim) with megatron_legacy; padded vocabulary; PP stages
    numbering their layers from 0, the last one holding the final layer norm, the output layer, or
    (tied) its copy of the word embeddings as word_embeddings.weight; "model.module." and the
    checkpoint in bfloat16 with megatron_amp_O2."""
    import collections
    import os
    cfg = json.load(open(f"{src}/config.json"))
    w = load_safetensors(f"{src}/model.safetensors")
    if cfg["model_type"] == "gpt2":
        cfg, w = megatron_from_gpt2(cfg, w)
    h, heads, vocab, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["vocab_size"], cfg["num_layers"]
    d, divisible = cfg["kv_channels"] or h // heads, 128
    padded = -(-vocab // (divisible * tp)) * divisible * tp
    emb = torch.zeros(padded, h)
    emb[:vocab] = w["word_embeddings"]
    m = "model.module." if cfg["amp_o2"] else "model."
    p0 = m + "language_model."
    per_stage, local_heads = layers // pp, heads // tp

    def qkv(prefix, suffix, r):
        parts = [w[prefix + t + suffix].reshape(heads, d, *w[prefix + t + suffix].shape[1:])[r * local_heads:(r + 1) * local_heads]
                 for t in "qkv"]  # each [local heads, d, ...]
        stacked = torch.stack(parts, 0 if cfg["megatron_legacy"] else 1)
        return stacked.reshape(3 * local_heads * d, *stacked.shape[3:])

    for r in range(tp):
        for stage in range(pp):
            state = collections.OrderedDict()
            if stage == 0:
                state[p0 + "embedding.word_embeddings.weight"] = emb.chunk(tp, 0)[r]
                state[p0 + "embedding.position_embeddings.weight"] = w["position_embeddings"]
            for local in range(per_stage):
                s, t = f"layers.{stage * per_stage + local}.", f"{p0}encoder.layers.{local}."
                state[t + "input_layernorm.weight"], state[t + "input_layernorm.bias"] = w[s + "ln1.weight"], w[s + "ln1.bias"]
                state[t + "self_attention.query_key_value.weight"] = qkv(s, ".weight", r)
                state[t + "self_attention.query_key_value.bias"] = qkv(s, ".bias", r)
                state[t + "self_attention.dense.weight"] = w[s + "dense.weight"].chunk(tp, 1)[r]
                state[t + "self_attention.dense.bias"] = w[s + "dense.bias"]
                state[t + "post_attention_layernorm.weight"] = w[s + "ln2.weight"]
                state[t + "post_attention_layernorm.bias"] = w[s + "ln2.bias"]
                state[t + "mlp.dense_h_to_4h.weight"] = w[s + "fc1.weight"].chunk(tp, 0)[r]
                state[t + "mlp.dense_h_to_4h.bias"] = w[s + "fc1.bias"].chunk(tp, 0)[r]
                state[t + "mlp.dense_4h_to_h.weight"] = w[s + "fc2.weight"].chunk(tp, 1)[r]
                state[t + "mlp.dense_4h_to_h.bias"] = w[s + "fc2.bias"]
            if stage == pp - 1:
                state[p0 + "encoder.final_layernorm.weight"] = w["final_ln.weight"]
                state[p0 + "encoder.final_layernorm.bias"] = w["final_ln.bias"]
                if not cfg["tied"]:
                    out = torch.zeros(padded, h)
                    out[:vocab] = w["output_layer"]
                    state[p0 + "output_layer.weight"] = out.chunk(tp, 0)[r]
                elif pp > 1:
                    state[m + "word_embeddings.weight"] = emb.chunk(tp, 0)[r]
            dtype = torch.bfloat16 if cfg["amp_o2"] else torch.float32
            state = collections.OrderedDict((k, v.to(dtype).clone()) for k, v in state.items())
            state._metadata = collections.OrderedDict({"": {"version": 1}})
            folder = f"{dst}/tp_rank_{r:02d}_pp_rank_{stage:03d}" if pp > 1 else f"{dst}/mp_rank_{r:02d}" if tp > 1 else dst
            os.makedirs(folder, exist_ok=True)
            torch.save(state, f"{folder}/model_weights.ckpt")
    # The tokenizer's files as NeMo stores them (nemo:<hash>_<name>): the source's own GPT-2 vocab.json
    # and merges.txt when it has them, else a stand-in vocabulary of the right size and no merges.
    if os.path.exists(f"{src}/vocab.json") and os.path.exists(f"{src}/merges.txt"):
        shutil.copy(f"{src}/vocab.json", f"{dst}/0123456789abcdef0123456789abcdef_vocab.json")
        shutil.copy(f"{src}/merges.txt", f"{dst}/0123456789abcdef0123456789abcdef_merges.txt")
    else:
        with open(f"{dst}/0123456789abcdef0123456789abcdef_vocab.json", "w") as f:
            json.dump({f"t{i}": i for i in range(vocab)}, f)
    gelu = "openai_gelu: false\nbias_activation_fusion: false" if cfg["gelu"] == "erf" else "bias_activation_fusion: true"
    with open(f"{dst}/model_config.yaml", "w") as f:
        f.write(f"""precision: {"bf16" if cfg["amp_o2"] else 16}
micro_batch_size: 1
tensor_model_parallel_size: {tp}
pipeline_model_parallel_size: {pp}
encoder_seq_length: {cfg["max_position_embeddings"]}
max_position_embeddings: {cfg["max_position_embeddings"]}
num_layers: {layers}
hidden_size: {h}
ffn_hidden_size: {cfg["ffn_hidden_size"]}
num_attention_heads: {heads}
kv_channels: {cfg["kv_channels"] or "null"}
layernorm_epsilon: {cfg["layernorm_epsilon"]}
make_vocab_size_divisible_by: {divisible}
activation: gelu
{gelu}
share_embeddings_and_output_weights: {str(cfg["tied"]).lower()}
megatron_legacy: {str(cfg["megatron_legacy"]).lower()}
megatron_amp_O2: {str(cfg["amp_o2"]).lower()}
tokenizer:
  library: megatron
  type: GPT2BPETokenizer
  model: null
  vocab_file: nemo:0123456789abcdef0123456789abcdef_vocab.json
  merge_file: nemo:0123456789abcdef0123456789abcdef_merges.txt
""")


def main(argv):
    if len(argv) >= 3 and argv[0] == "make":
        family, folder = argv[1], argv[2]
        cfg = config_for(family, int(argv[3]) if len(argv) > 3 else VOCAB)
        gen = torch.Generator().manual_seed(1234 + len(family))
        with open(f"{folder}/config.json", "w") as f:
            json.dump(cfg, f, indent=1)
        save_safetensors(f"{folder}/model.safetensors", make_weights(cfg, gen))
        return 0
    if len(argv) == 4 and argv[0] == "generate":
        folder, count = argv[1], int(argv[3])
        cfg = json.load(open(f"{folder}/config.json"))
        w = load_safetensors(f"{folder}/model.safetensors")
        forward = {"gpt2": gpt2_forward, "opt": opt_forward, "megatron": megatron_forward}[cfg["model_type"]]
        for prompt in argv[2].split(";"):  # "1,2;3": one line per prompt, in order
            ids, out, logprobs, margins = [int(i) for i in prompt.split(",")], [], [], []
            with torch.no_grad():
                for _ in range(count):
                    lp = torch.log_softmax(forward(cfg, w, torch.tensor(ids + out))[-1].double(), -1)
                    top = torch.topk(lp, 2).values
                    token = int(lp.argmax())
                    out.append(token)
                    logprobs.append(float(lp[token]))
                    margins.append(float(top[0] - top[1]))
                    if token == cfg["eos_token_id"]:
                        break
            print(json.dumps({"generated_ids": out, "logprobs": logprobs, "margins": margins}))
        return 0
    if len(argv) == 2 and argv[0] == "shard":
        import os
        folder = argv[1]
        w = load_safetensors(f"{folder}/model.safetensors")
        names = sorted(w)
        halves = [names[: len(names) // 2], names[len(names) // 2:]]
        index = {"metadata": {}, "weight_map": {}}
        for k, half in enumerate(halves):
            file = f"model-{k + 1:05d}-of-00002.safetensors"
            save_safetensors(f"{folder}/{file}", {n: w[n] for n in half})
            index["weight_map"].update({n: file for n in half})
        with open(f"{folder}/model.safetensors.index.json", "w") as f:
            json.dump(index, f)
        os.remove(f"{folder}/model.safetensors")
        return 0
    if len(argv) in (4, 5) and argv[0] == "make-nemo":
        make_nemo(argv[1], argv[2], int(argv[3]), int(argv[4]) if len(argv) == 5 else 1)
        return 0
    if len(argv) == 4 and argv[0] == "pack-nemo":  # as NeMo's save_restore_connector does: tarfile, "./" names
        import tarfile
        with tarfile.open(argv[2], "w:gz" if argv[3] == "gz" else "w:") as tar:
            tar.add(argv[1], arcname=".")
        return 0
    if len(argv) == 2 and argv[0] == "make-bin":
        import collections
        import os
        folder = argv[1]
        cfg = json.load(open(f"{folder}/config.json"))
        w = load_safetensors(f"{folder}/model.safetensors")
        state = collections.OrderedDict()
        for name in sorted(w):
            t = w[name]
            if name.startswith("transformer."):  # old GPT-2 files: no prefix, Conv1D stored column-major
                name = name[len("transformer."):]
                if t.dim() == 2 and ".h." in "." + name:
                    t = t.t().contiguous().t()
            elif name.startswith("model."):  # old OPT files: decoder.* without model.
                name = name[len("model."):]
            state[name] = t
        if cfg["model_type"] == "gpt2":  # the causal-mask buffers old GPT-2 files carry
            n = cfg["n_positions"]
            for i in range(cfg["n_layer"]):
                state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
                state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        state._metadata = collections.OrderedDict({"": {"version": 1}})
        torch.save(state, f"{folder}/pytorch_model.bin")
        os.remove(f"{folder}/model.safetensors")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
