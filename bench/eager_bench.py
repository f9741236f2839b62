"""Decode throughput of a plain PyTorch eager model shaped like random/125M (OPT-125M: 12 layers, hidden 768,
12 heads, ffn 3072, vocabulary 50272, learned positions with offset 2, ReLU, pre-LN, tied output), fp32, with
its own KV cache and greedy decoding, timed the way bench/decode_bench.cpp times rankserve: a step is
(time of 1 + n tokens - time of 1 token) / n. Random weights; the work per step is what rankserve does.
Run by bench/eager_bench.sh. Usage: /usr/bin/python3 eager_bench.py [new tokens] [threads]
Prints one line per batch size: "eager batch B: T tokens/s (S ms/step)".
"""
import math
import sys
import time

import torch
import torch.nn.functional as F

LAYERS, HIDDEN, HEADS, FFN, VOCAB, POSITIONS, OFFSET = 12, 768, 12, 3072, 50272, 2048, 2
HEAD_DIM = HIDDEN // HEADS
PROMPT_TOKENS = 8


class Model:
    def __init__(self):
        g = torch.Generator().manual_seed(0)

        def normal(*shape):
            return torch.randn(*shape, generator=g) * 0.02

        self.embed = normal(VOCAB, HIDDEN)  # tied with the output layer
        self.positions = normal(POSITIONS + OFFSET, HIDDEN)
        self.layers = [
            dict(ln1_w=torch.ones(HIDDEN), ln1_b=torch.zeros(HIDDEN),
                 qkv_w=normal(3 * HIDDEN, HIDDEN), qkv_b=torch.zeros(3 * HIDDEN),
                 out_w=normal(HIDDEN, HIDDEN), out_b=torch.zeros(HIDDEN),
                 ln2_w=torch.ones(HIDDEN), ln2_b=torch.zeros(HIDDEN),
                 fc1_w=normal(FFN, HIDDEN), fc1_b=torch.zeros(FFN),
                 fc2_w=normal(HIDDEN, FFN), fc2_b=torch.zeros(HIDDEN))
            for _ in range(LAYERS)]
        self.ln_f_w, self.ln_f_b = torch.ones(HIDDEN), torch.zeros(HIDDEN)

    def new_cache(self, batch, max_tokens):
        """Per layer: keys and values [batch, heads, max_tokens, head_dim]."""
        return [(torch.empty(batch, HEADS, max_tokens, HEAD_DIM), torch.empty(batch, HEADS, max_tokens, HEAD_DIM))
                for _ in range(LAYERS)]

    def forward(self, ids, cache, past):
        """ids [batch, n] at positions past..past+n-1; appends to cache; returns the last token's logits."""
        b, n = ids.shape
        x = F.embedding(ids, self.embed) + self.positions[past + OFFSET:past + OFFSET + n]
        for w, (k_cache, v_cache) in zip(self.layers, cache):
            h = F.layer_norm(x, (HIDDEN,), w["ln1_w"], w["ln1_b"])
            q, k, v = F.linear(h, w["qkv_w"], w["qkv_b"]).split(HIDDEN, dim=-1)
            q, k, v = (t.view(b, n, HEADS, HEAD_DIM).transpose(1, 2) for t in (q, k, v))
            k_cache[:, :, past:past + n] = k
            v_cache[:, :, past:past + n] = v
            keys, values = k_cache[:, :, :past + n], v_cache[:, :, :past + n]
            scores = torch.matmul(q, keys.transpose(2, 3)) / math.sqrt(HEAD_DIM)
            if n > 1:
                scores = scores.masked_fill(torch.ones(n, past + n, dtype=torch.bool).triu(past + 1), float("-inf"))
            context = torch.matmul(torch.softmax(scores, dim=-1), values).transpose(1, 2).reshape(b, n, HIDDEN)
            x = x + F.linear(context, w["out_w"], w["out_b"])
            h = F.layer_norm(x, (HIDDEN,), w["ln2_w"], w["ln2_b"])
            x = x + F.linear(F.relu(F.linear(h, w["fc1_w"], w["fc1_b"])), w["fc2_w"], w["fc2_b"])
        x = F.layer_norm(x[:, -1], (HIDDEN,), self.ln_f_w, self.ln_f_b)
        return F.linear(x, self.embed)


def generate(model, prompts, new_tokens):
    """Greedy: the prompt's prefill picks the first token, each decode step one more per sequence."""
    b, n = prompts.shape
    cache = model.new_cache(b, n + new_tokens)
    out = torch.empty(b, new_tokens, dtype=torch.long)
    out[:, 0] = model.forward(prompts, cache, 0).argmax(-1)
    for i in range(1, new_tokens):
        out[:, i] = model.forward(out[:, i - 1:i], cache, n + i - 1).argmax(-1)
    return out


def decode_step_seconds(model, batch, n):
    prompts = torch.tensor([[100 + 37 * b + i for i in range(PROMPT_TOKENS)] for b in range(batch)])
    generate(model, prompts, 2)  # warm-up
    start = time.perf_counter()
    generate(model, prompts, 1)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    generate(model, prompts, 1 + n)
    return (time.perf_counter() - start - prefill) / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    if len(sys.argv) > 2:
        torch.set_num_threads(int(sys.argv[2]))
    print(f"eager_bench: torch {torch.__version__} on {torch.get_num_threads()} threads, {n} decode steps per batch size")
    model = Model()
    with torch.inference_mode():
        for batch in (1, 8, 32):
            step = decode_step_seconds(model, batch, n)
            print(f"eager batch {batch:>2}: {batch / step:8.1f} tokens/s ({step * 1e3:6.1f} ms/step)", flush=True)


if __name__ == "__main__":
    main()
