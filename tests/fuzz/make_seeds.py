#!/usr/bin/python3
"""Writes the seed inputs in tests/fuzz/corpus/ (committed; not run by the tests). Needs python3-torch
for the pickle seed (Debian's /usr/bin/python3): /usr/bin/python3 tests/fuzz/make_seeds.py"""
import collections, gzip, io, json, os, struct, sys, tarfile, zipfile, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# KServe infer: line 1 the Inference-Header-Content-Length value (empty: none), then the body.
def kserve(name, body, binary=b""):
    header = str(len(body)) if binary else ""
    put("kserve_infer_fuzz", name, header.encode() + b"\n" + body.encode() + binary)


kserve("opt_json", compact({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [2, 1], "data": ["The capital of Poland is", "1 2 3"]},
                                       {"name": "output_length", "datatype": "INT64", "shape": [2, 1], "data": [8, 4]}],
                            "outputs": [{"name": "output"}], "parameters": {"seed": 7, "temperature": 0.5, "top_p": 0.9}}))
kserve("gpt_json", compact({"id": "42", "inputs": [
    {"name": "prompts", "datatype": "BYTES", "shape": [1, 1], "data": [["Thank you for"]]},
    {"name": "max_length", "datatype": "INT32", "shape": [1, 1], "data": [30]},
    {"name": "min_length", "datatype": "INT32", "shape": [1, 1], "data": [1]},
    {"name": "use_greedy", "datatype": "BOOL", "shape": [1, 1], "data": [False]},
    {"name": "temperature", "datatype": "FP32", "shape": [1, 1], "data": [0.8]},
    {"name": "top_k", "datatype": "INT32", "shape": [1, 1], "data": [5]},
    {"name": "top_p", "datatype": "FP32", "shape": [1, 1], "data": [0.9]},
    {"name": "repetition_penalty", "datatype": "FP32", "shape": [1, 1], "data": [1.1]},
    {"name": "add_BOS", "datatype": "BOOL", "shape": [1, 1], "data": [True]},
    {"name": "all_probs", "datatype": "BOOL", "shape": [1, 1], "data": [False]},
    {"name": "compute_logprob", "datatype": "BOOL", "shape": [1, 1], "data": [True]},
    {"name": "end_strings", "datatype": "BYTES", "shape": [1, 2], "data": ["<|endoftext|>", "\n"]}],
    "outputs": [{"name": "sentences"}, {"name": "logprob", "parameters": {"binary_data": True}}],
    "parameters": {"timeout": 1000000}}))
prompts = b"".join(struct.pack("<I", len(p)) + p for p in [b"Thank you for", b"1 2 3"])
lengths = struct.pack("<ii", 8, 4)
kserve("gpt_binary", compact({"inputs": [
    {"name": "prompts", "datatype": "BYTES", "shape": [2, 1], "parameters": {"binary_data_size": len(prompts)}},
    {"name": "max_length", "datatype": "INT32", "shape": [2, 1], "parameters": {"binary_data_size": len(lengths)}}],
    "parameters": {"binary_data_output": True}}), prompts + lengths)
temperature = struct.pack("<f", 0.7)
kserve("opt_binary", compact({"inputs": [
    {"name": "input", "datatype": "BYTES", "shape": [1, 1], "parameters": {"binary_data_size": 4 + 5}},
    {"name": "output_length", "datatype": "INT32", "shape": [1, 1], "data": [3]}]}), struct.pack("<I", 5) + b"hello")

put("openai_completions_fuzz", "full", compact({
    "model": "OPT", "prompt": ["The capital of Poland is", "1 2 3"], "max_tokens": 8, "temperature": 0.7, "top_p": 0.9,
    "top_k": 40, "n": 2, "best_of": 2, "stop": ["\n", "."], "seed": 1, "logprobs": 2, "stream": True,
    "stream_options": {"include_usage": True}, "repetition_penalty": 1.1, "presence_penalty": 0, "logit_bias": {},
    "min_tokens": 1, "ignore_eos": False, "suffix": ""}))
put("openai_completions_fuzz", "plain", compact({"prompt": "Hello", "echo": True, "temperature": 0}))
put("openai_chat_fuzz", "full", compact({
    "model": "GPT", "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]},
                                 {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"}],
    "max_completion_tokens": 16, "temperature": 0, "logprobs": True, "top_logprobs": 2, "stream": True,
    "stream_options": {"include_usage": True}, "tools": [], "response_format": {"type": "text"}, "stop": "END"}))
put("openai_chat_fuzz", "plain", compact({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4, "n": 3, "seed": 2}))

# HTTP: byte 0 is the read size minus 1, then the bytes on the wire.
def http(name, chunk, wire):
    put("http_request_fuzz", name, bytes([chunk - 1]) + wire)


http("get", 256, b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
body = compact({"prompt": "Hello", "max_tokens": 4}).encode()
http("post", 7, b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\n"
     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
http("chunked", 3, b"POST /v2/models/GPT/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
     b"Inference-Header-Content-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
http("pipelined", 64, b"GET /metrics HTTP/1.0\r\n\r\nGET /v2 HTTP/1.1\r\nConnection: close\r\n\r\n")

# SSE: byte 0 seeds the chunk split, then the stream.
put("sse_parser_fuzz", "openai", b"\x05" + b'data: {"choices":[{"text":"Hi"}]}\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]\r\n\r\n')
put("sse_parser_fuzz", "triton", b"\x02" + b"\xef\xbb\xbfevent: message\nid: 7\ndata: {\"text_output\":\"a\"}\ndata: b\n\nretry: 10\rdata:x\r\rdata")

# Content-Encoding: byte 0 = coding (bits 0-1: gzip, deflate, x-gzip, br) | limit in KiB << 2, then the body.
infer_json = compact({"inputs": [{"name": "prompts", "datatype": "BYTES", "shape": [1, 1], "data": ["1 2 3"]}]}).encode()
put("content_encoding_fuzz", "gzip", bytes([0 | 4 << 2]) + gzip.compress(infer_json, mtime=0))
put("content_encoding_fuzz", "gzip_members", bytes([2 | 4 << 2]) + gzip.compress(b"ab", mtime=0) + gzip.compress(b"cd", mtime=0))
put("content_encoding_fuzz", "zlib", bytes([1 | 4 << 2]) + zlib.compress(infer_json))
put("content_encoding_fuzz", "raw_deflate", bytes([1 | 4 << 2]) + zlib.compress(infer_json, wbits=-15))
put("content_encoding_fuzz", "bomb", bytes([0 | 1 << 2]) + gzip.compress(bytes(64 * 1024), mtime=0))

# safetensors: 8-byte little-endian header length, the JSON header, the data.
def safetensors(tensors):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = compact(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


put("safetensors_fuzz", "two", safetensors({"wte.weight": ("F32", [2, 3], struct.pack("<6f", *range(6))),
                                            "ln_f.bias": ("BF16", [2], b"\x80\x3f\x00\x40"), "step": ("I64", [], struct.pack("<q", 3))}))
put("safetensors_fuzz", "empty_tensor", safetensors({"x": ("F16", [0, 4], b""), "y": ("U8", [3], b"abc"), "z": ("BOOL", [1], b"\x01")}))

# torch.save's data.pkl, as torch writes it (a state_dict with _metadata, a transposed view, bf16).
try:
    import torch
    state = collections.OrderedDict(weight=torch.arange(6, dtype=torch.float32).reshape(2, 3),
                                    bias=torch.ones(3, dtype=torch.bfloat16))
    state["weight_t"] = state["weight"].t()
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        put("torch_pickle_fuzz", "state_dict", z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))
except ImportError:
    print("make_seeds: no torch; the pickle seed is left as it is", file=sys.stderr)

# tar: a .nemo-like archive (ustar, a GNU long name, a PAX path), plain and gzip, without the
# record padding (the reader stops at the first zero block).
def tar(fmt):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in [("./model_config.yaml", b"hidden_size: 8\n"), ("./" + "d" * 110 + "/vocab.json", b'{"a":0}')]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    end = len(raw)
    while end >= 512 and raw[end - 512:end] == b"\0" * 512:
        end -= 512
    return raw[:end] + b"\0" * 1024


put("tar_archive_fuzz", "gnu.nemo", tar(tarfile.GNU_FORMAT))
put("tar_archive_fuzz", "pax.nemo", tar(tarfile.PAX_FORMAT))
put("tar_archive_fuzz", "gnu_gzip.nemo", gzip.compress(tar(tarfile.GNU_FORMAT), mtime=0))

put("nemo_config_fuzz", "megatron_gpt", """precision: 16
micro_batch_size: 1
tensor_model_parallel_size: 2
pipeline_model_parallel_size: 1
encoder_seq_length: 2048
max_position_embeddings: 2048
num_layers: 12
hidden_size: 768
ffn_hidden_size: 3072
num_attention_heads: 12
kv_channels: null
layernorm_epsilon: 1.0e-05
make_vocab_size_divisible_by: 128
activation: gelu
bias_activation_fusion: true
share_embeddings_and_output_weights: true
megatron_legacy: false
megatron_amp_O2: false
mcore_gpt: false
normalization: layernorm
position_embedding_type: learned_absolute
transformer_block_type: pre_ln
bias: true
num_query_groups: null
tokenizer:
  library: megatron
  type: GPT2BPETokenizer
  model: null
  vocab_file: nemo:c4ea3e6b0ff741b2b1b8a5e5b0a0a0a0_vocab.json
  merge_file: nemo:1a2b3c4d5e6f40718293a4b5c6d7e8f9_merges.txt
optim:
  name: fused_adam
  lr: 0.0002
""")
put("nemo_config_fuzz", "flow_style", "{hidden_size: 64, num_layers: 2, num_attention_heads: 4, encoder_seq_length: 128, "
    "kv_channels: 32, openai_gelu: true, bias_activation_fusion: false, tokenizer: {vocab_file: vocab.json, merge_file: merges.txt}}\n")

put("hf_config_fuzz", "opt-125m", json.dumps({
    "_name_or_path": "facebook/opt-125m", "activation_dropout": 0.0, "activation_function": "relu", "architectures": ["OPTForCausalLM"],
    "attention_dropout": 0.0, "bos_token_id": 2, "do_layer_norm_before": True, "dropout": 0.1, "eos_token_id": 2, "ffn_dim": 3072,
    "hidden_size": 768, "init_std": 0.02, "layerdrop": 0.0, "max_position_embeddings": 2048, "model_type": "opt",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "prefix": "</s>", "torch_dtype": "float16",
    "transformers_version": "4.21.0.dev0", "use_cache": True, "vocab_size": 50272, "word_embed_proj_dim": 768}, indent=2))
put("hf_config_fuzz", "gpt2", json.dumps({
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "bos_token_id": 50256, "eos_token_id": 50256,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": None, "n_layer": 12,
    "n_positions": 1024, "vocab_size": 50257}, indent=2))
