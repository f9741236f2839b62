// Float32 kernels for x86 CPUs with AVX-512 that decode steps need: matrix products that stream each
// weight once per call in its stored layout, attention of one new token per sequence, and greedy
// picks. Internal to GptModel and Sampler; each entry point says when it applies, and the caller
// falls back to ATen otherwise. Any thread; the kernels split their work over the intra-op threads.
#pragma once

#include <ATen/ATen.h>

#include <span>

namespace rankserve::runtime {

// True when cpu_project can run x [n, in] times w [out, in]^T: float32 CPU tensors, w contiguous, and
// a CPU with AVX-512F and VL.
bool cpu_project_applies(const at::Tensor& x, const at::Tensor& w);

// x [n, in] times w [out, in]^T (+ b [out], when defined) as a new [n, out] tensor. Reads w once per
// 64 rows of x, in its stored layout (BLAS gemm copies, i.e. packs, the whole of w first), split over
// the intra-op threads by output rows. Precondition: cpu_project_applies(x, w).
at::Tensor cpu_project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// One sequence that runs one new token: its q, k, v are row `row` of the step's qkv [tokens,
// 3 x heads x head_dim], its cache tensors are [max_tokens, heads, head_dim] holding `past` tokens.
struct DecodeAttentionItem {
  int64_t row = 0;
  int64_t past = 0;
  at::Tensor* k_cache = nullptr;
  at::Tensor* v_cache = nullptr;
};

// True when decode_attention can run on these tensors: float32, CPU, contiguous, AVX-512F and VL.
bool decode_attention_applies(const at::Tensor& qkv, const at::Tensor& k_cache);

// For each item: writes its k and v at position `past` of its caches, and writes softmax(q k^T /
// sqrt(head_dim)) v over positions 0..past into row `row` of `context` [tokens, heads x head_dim].
// Split over the intra-op threads by (item, head). Precondition: decode_attention_applies for each.
void decode_attention(const at::Tensor& qkv, std::span<const DecodeAttentionItem> items, int64_t heads, int64_t head_dim,
                      at::Tensor& context);

// True when best_token can run on `logits`: a contiguous float32 CPU vector, and AVX-512F and VL.
bool best_token_applies(const at::Tensor& logits);

struct BestToken {
  int64_t token = 0;
  float logprob = 0;  // log_softmax(logits)[token]; NaN when any logit is NaN or +inf
};

// The first id of the largest of logits[0, usable) (greedy decoding), and its log-probability
// under all of `logits`. Precondition: best_token_applies(logits), 1 <= usable <= logits.numel().
BestToken best_token(const at::Tensor& logits, int64_t usable);

}  // namespace rankserve::runtime
