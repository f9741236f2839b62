// Kernels for x86 CPUs with AVX-512 that decode steps need: matrix products that stream each weight
// (float32, bf16 or fp16) once per call in its stored layout, attention of one new token per sequence
// over a float32, bf16 or fp16 cache, and greedy picks; all sum in float32. One binary for every
// x86-64 level: the CPU's features are checked at run time. Internal to GptModel and Sampler; each entry point says when it
// applies, and the caller falls back to ATen otherwise. Any thread; the kernels split their work over the intra-op threads.
#pragma once

#include <ATen/ATen.h>

#include <span>
#include <string>

namespace rankserve::runtime {

// True when cpu_project can run x [n, in] times w [out, in]^T: CPU tensors, w contiguous, w float32
// with x float32, or w bf16 or fp16 with x float32, bf16 or fp16; and a CPU with AVX-512F, VL and BW.
bool cpu_project_applies(const at::Tensor& x, const at::Tensor& w);

// x [n, in] times w [out, in]^T (+ b [out], when defined) as a new [n, out] tensor of x's type, summed
// in float32. Reads w once per 64 rows of x, in its stored layout (BLAS gemm copies, i.e. packs, the
// whole of w first), split over the intra-op threads by output rows; one row of x (batch-1 decode)
// reads w front to back, one weight row after another, with a prefetch ahead. bf16 weights: AVX512_BF16 dot
// products of x rounded to bf16 (exact when x is bf16) where the CPU has them and allow_avx512_bf16
// did not turn them off; else widened to float32 against x in float32. fp16 weights: converted to
// float32 (F16C). Precondition: cpu_project_applies(x, w).
at::Tensor cpu_project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// x [n, in] times w [out, in]^T (+ b) the faster way measured for n rows: cpu_project below a row
// count (decode steps, on any number of intra-op threads), BLAS gemm from it (prefill; half-precision
// weights widened to float32 for the call).
// Precondition: cpu_project_applies(x, w).
at::Tensor cpu_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// Whether cpu_project may use AVX512_BF16 (default true); false runs the portable bf16 path, for
// tests and benchmarks. Any thread; applies from the next call.
void allow_avx512_bf16(bool allowed);

// Which kernels this CPU runs, for the start-up log.
std::string cpu_kernels_chosen();

// Makes every BLAS call single-threaded (OpenBLAS, looked up at run time) and says what it did: products
// that reach BLAS split their input rows over ATen's intra-op threads instead, since OpenBLAS's own
// pthread pool and ATen's OpenMP threads, which spin after each region, would share the same cores.
// Process-wide; call before the first product.
std::string blas_threads_per_call();

// x [n, in] times w [out, in]^T (+ b) in x's type through ATen (BLAS), the rows split over the intra-op
// threads in runs (one BLAS call each): how products that reach BLAS use every thread once
// blas_threads_per_call has made each call single-threaded. CPU tensors, n > 1.
at::Tensor rows_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// One sequence that runs one new token: its q, k, v are row `row` of the step's qkv [tokens,
// 3 x heads x head_dim], its cache tensors are [max_tokens, heads, head_dim] holding `past` tokens.
struct DecodeAttentionItem {
  int64_t row = 0;
  int64_t past = 0;
  at::Tensor* k_cache = nullptr;
  at::Tensor* v_cache = nullptr;
};

// True when decode_attention can run on these tensors: qkv (and context) float32, bf16 or fp16 with
// caches of the same type, or qkv float32 with bf16 or fp16 caches; CPU, contiguous; AVX-512F, VL, BW.
// Every item's caches have one type.
bool decode_attention_applies(const at::Tensor& qkv, const at::Tensor& k_cache);

// For each item: writes its k and v at position `past` of its caches, and writes softmax(q k^T /
// sqrt(head_dim)) v over positions 0..past into row `row` of `context` [tokens, heads x head_dim],
// computed in float32 and rounded to the tensors' type.
// Split over the intra-op threads by (item, head). Precondition: decode_attention_applies for each.
void decode_attention(const at::Tensor& qkv, std::span<const DecodeAttentionItem> items, int64_t heads, int64_t head_dim,
                      at::Tensor& context);

// True when best_token can run on `logits`: a contiguous float32 CPU vector, and AVX-512F, VL and BW.
bool best_token_applies(const at::Tensor& logits);

struct BestToken {
  int64_t token = 0;
  float logprob = 0;  // log_softmax(logits)[token]; NaN when any logit is NaN or +inf
};

// The first id of the largest of logits[0, usable) (greedy decoding), and its log-probability
// under all of `logits`. Precondition: best_token_applies(logits), 1 <= usable <= logits.numel().
BestToken best_token(const at::Tensor& logits, int64_t usable);

}  // namespace rankserve::runtime
