#!/usr/bin/env python3
"""GPU benchmarks of rankserve on GPU 0, each a ratio measured in this one run (docs/benchmarks.md). Not a test.

  gpu_bench.py BUILD_DIR WORK_DIR [new tokens at batch 1, default 512]

1. HBM bound: the device-to-device copy bandwidth (bytes read + written per second, torch's copy_ on 2 GiB
   buffers, best of 10) over the weight bytes one decode step reads (all of them, bf16) gives the most decode
   steps per second at batch 1. rankserve serves random/1.3B in bf16; a decode step is
   (time of a 1 + n token request - time of a 1 token request) / n, so start-up, prefill and HTTP cancel out.
2. Batch 32 against batch 1: 32 concurrent requests the same way, aggregate tokens/s over batch 1's.
3. Hugging Face transformers generate() (greedy, KV cache, bf16, same GPU) on a random OPT of the same shape
   (the OPT example's 1.3B row: hidden 2048, 24 layers, 32 heads, ffn 8192), built here from its config, no
   download: decode step timed the same way at batch 1 and 32; rankserve's tokens/s over HF's.
4. Load: that OPT saved as safetensors (bf16), loaded by rankserve generate; its reported GB/s over the file's
   read bandwidth (one sequential read in 64 MiB chunks), page cache dropped before each when allowed.
Needs python3 with torch (CUDA) and transformers; rankserve at BUILD_DIR/launcher/rankserve.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import torch

GIB = 1 << 30
PROMPT = "The quick brown fox jumps over the lazy dog"  # 9 GPT-2 tokens; OPT puts </s> in front
SHAPE = dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, ffn_dim=8192, vocab_size=50272,
             max_position_embeddings=2048, word_embed_proj_dim=2048, do_layer_norm_before=True)


def log(*args):
    print(*args, flush=True)


def copy_bandwidth():
    """Device-to-device copy bandwidth of GPU 0 in bytes (read + written) per second, best of 10."""
    src = torch.empty(2 * GIB, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(10):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        best = max(best, 2 * src.numel() / (start.elapsed_time(stop) / 1e3))
    del src, dst
    torch.cuda.empty_cache()
    return best


def drop_page_cache():
    """True when the kernel's page cache could be dropped (root, writable /proc/sys/vm)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Server:
    """rankserve serve on GPU 0, ready when constructed; stopped by stop()."""

    def __init__(self, rankserve, model, work, flags):
        url_file = os.path.join(work, "url")
        if os.path.exists(url_file):
            os.remove(url_file)
        self.log_path = os.path.join(work, "serve.log")
        self.proc = subprocess.Popen(
            [rankserve, "serve", "--model-path", model, "--gpus", "1", "--http-port", "0", "--metrics-port", "-1",
             "--url-file", url_file, "--timeout", "120", *flags],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not os.path.exists(url_file) or not open(url_file).read().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"gpu_bench: serve did not start:\n{open(self.log_path).read()[-3000:]}")
            time.sleep(0.2)
        self.url = open(url_file).read().strip()
        while True:  # the URL is written when HTTP listens; requests get 503 until every rank is ready
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=10) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"gpu_bench: serve never became ready:\n{open(self.log_path).read()[-3000:]}")
            time.sleep(0.2)

    def complete(self, tokens):
        body = json.dumps({"model": "OPT", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
                           "ignore_eos": True}).encode()
        request = urllib.request.Request(self.url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as reply:
            usage = json.load(reply)["usage"]
        if usage["completion_tokens"] != tokens:
            raise SystemExit(f"gpu_bench: {usage['completion_tokens']} tokens instead of {tokens}")
        return usage

    def timed(self, batch, tokens):
        """Seconds until `batch` concurrent requests of `tokens` tokens have all finished."""
        errors = []

        def one():
            try:
                self.complete(tokens)
            except BaseException as e:  # reported below: a failed request must not pass as a fast one
                errors.append(e)

        threads = [threading.Thread(target=one) for _ in range(batch)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"gpu_bench: a request failed: {errors[0]}")
        return time.perf_counter() - start

    def step_seconds(self, batch, n):
        self.timed(batch, 2)  # warm-up: kernels, CUDA graphs, allocator
        return (self.timed(batch, 1 + n) - self.timed(batch, 1)) / n

    def log_text(self):
        return open(self.log_path).read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def shape_weight_bytes():
    """bf16 bytes of SHAPE's weights, each read once per decode step (the output head is the tied embedding)."""
    h, f, v, layers = SHAPE["hidden_size"], SHAPE["ffn_dim"], SHAPE["vocab_size"], SHAPE["num_hidden_layers"]
    per_layer = 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h  # q, k, v, out and fc1, fc2 with biases; two layer norms
    return 2.0 * (v * h + (SHAPE["max_position_embeddings"] + 2) * h + 2 * h + layers * per_layer)


def hf_step_seconds(model, batch, n):
    ids = torch.randint(3, SHAPE["vocab_size"], (batch, 10), device="cuda")

    def run(tokens):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
                             do_sample=False)
        torch.cuda.synchronize()
        assert out.shape[1] == ids.shape[1] + tokens
        return time.perf_counter() - start

    run(2)
    return (run(1 + n) - run(1)) / n


def main(argv):
    build, work = argv[0], argv[1]
    n = int(argv[2]) if len(argv) > 2 else 512
    rankserve = os.path.join(build, "launcher", "rankserve")
    os.makedirs(work, exist_ok=True)
    log(f"gpu_bench: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {n} decode steps at batch 1")
    bandwidth = copy_bandwidth()
    log(f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s (read + written, torch copy_ of 2 GiB, best of 10)")

    # 1 and 2: rankserve on random/1.3B in bf16.
    server = Server(rankserve, "random/1.3B", work, ["--dtype", "bf16", "--max-batch-size", "32"])
    try:
        step1 = server.step_seconds(1, n)
        step32 = server.step_seconds(32, n // 4)
        loaded = re.search(r"shard ([0-9.]+) MB", server.log_text())
    finally:
        server.stop()
    weight_bytes = float(loaded.group(1)) * 1e6 if loaded else shape_weight_bytes()
    bound = bandwidth / weight_bytes
    log(f"rankserve random/1.3B bf16: {weight_bytes / 1e9:.2f} GB of weights "
        f"({'from its load log' if loaded else 'computed from the shape'}); HBM bound {bound:.0f} steps/s")
    log(f"batch  1: {1 / step1:8.1f} tokens/s ({step1 * 1e3:.2f} ms/step): {(1 / step1) / bound:.2f} of the HBM bound"
        " (target >= 0.70)")
    log(f"batch 32: {32 / step32:8.1f} tokens/s ({step32 * 1e3:.2f} ms/step): {(32 / step32) / (1 / step1):.1f}x batch 1"
        " (target >= 15x)")

    # 3: Hugging Face generate() on the same shape, same dtype, same GPU.
    import transformers
    config = transformers.OPTConfig(**SHAPE)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # created on the GPU in bf16: no 5 GB fp32 copy on the host
    with torch.device("cuda"):
        model = transformers.OPTForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model = model.to(dtype=torch.bfloat16).eval()
    with torch.no_grad():
        hf1 = hf_step_seconds(model, 1, max(32, n // 4))
        hf32 = hf_step_seconds(model, 32, max(16, n // 8))
    log(f"transformers {transformers.__version__} generate(): batch 1 {1 / hf1:.1f} tokens/s, batch 32 {32 / hf32:.1f} tokens/s")
    log(f"rankserve / transformers: batch 1 {hf1 / step1:.2f}x (target >= 3x), batch 32 {hf32 / step32:.2f}x (target > 1x)")

    # 4: load of that model's checkpoint against the file's read bandwidth.
    folder = os.path.join(work, "opt-1.3b")
    model.save_pretrained(folder)  # safetensors, the tied head once
    # save_pretrained leaves out the keys equal to OPTConfig's defaults (vocab_size, max_position_embeddings, ...),
    # which rankserve requires: the whole config instead.
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(model.config.to_dict(), f, indent=1, default=str)
    del model
    torch.cuda.empty_cache()
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".safetensors")]
    size = sum(os.path.getsize(f) for f in files)
    cold = drop_page_cache()
    start = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as handle:
            while handle.read(64 << 20):
                pass
    read_bandwidth = size / (time.perf_counter() - start)
    drop_page_cache()
    out = subprocess.run([rankserve, "generate", "--model-path", folder, "--gpus", "1", "--dtype", "bf16", "--prompt-ids",
                          "2,100,200", "--max-tokens", "1", "--timeout", "300"], capture_output=True, text=True)
    found = re.search(r"loaded .*\(([0-9.]+) GB/s\)", out.stdout + out.stderr)
    if out.returncode != 0 or not found:
        raise SystemExit(f"gpu_bench: rankserve generate on {folder} failed:\n{(out.stdout + out.stderr)[-3000:]}")
    load = float(found.group(1)) * 1e9
    log(f"load: {size / 1e9:.2f} GB of safetensors; file read {read_bandwidth / 1e9:.2f} GB/s, rankserve to the GPU "
        f"{load / 1e9:.2f} GB/s: {load / read_bandwidth:.2f} of the read bandwidth "
        f"({'page cache dropped before each' if cold else 'page cache NOT dropped: both may read from memory'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
