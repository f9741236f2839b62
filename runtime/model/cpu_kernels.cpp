#include "runtime/model/cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

// GCC 12 reports its own AVX-512 intrinsics' deliberately undefined operands (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace rankserve::runtime {
namespace {

// Only the functions marked RANKSERVE_AVX512 use AVX-512 instructions; callers check the CPU first.
#define RANKSERVE_AVX512 __attribute__((target("avx512f,avx512vl")))

bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return has;
}

constexpr int64_t kLanes = 16;  // floats per AVX-512 register
// A block: kWeightRows weight rows against up to kMaxInputRows input rows, 6 x 4 accumulators (of 32
// registers); each loaded vector feeds 4 or 6 products. Measured here against 4 x 6, 3 x 8 and 2 x 12.
constexpr int kWeightRows = 6;
constexpr int kMaxInputRows = 4;
constexpr int64_t kBlocksPerTask = 8;  // blocks a thread takes at a time
constexpr int64_t kChunkRows = 64;     // input rows per pass over the weights

__mmask16 tail_mask(int64_t remaining) { return static_cast<__mmask16>((1u << remaining) - 1); }

// The sums of the 16 lanes of a, b, c and d, in that order.
RANKSERVE_AVX512 __m128 sum_lanes4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Within each 128-bit lane: pairs, then [a, b, c, d] partial sums; then the four lanes.
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512 abcd =
      _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 half =
      _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
}

// Runs fn(task) for each task in [0, num_tasks) on the intra-op threads, each thread taking the next
// task when it finishes one: a thread that the OS or another process slows down holds up no one.
template <typename Fn>
void run_tasks(int64_t num_tasks, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), num_tasks), 1, [&](int64_t, int64_t) {
    for (int64_t task = next++; task < num_tasks; task = next++) fn(task);
  });
}

// The sum of the 16 lanes (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header).
RANKSERVE_AVX512 float sum_lanes(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 x = _mm512_castps512_ps128(v);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}

// y[c][r] = x[c] . w[r] (+ b[r]) for R weight rows and C input rows, over k in [0, K). When `next` is
// given, asks for the R x K floats there (the next weight rows) to be brought into L2 meanwhile.
template <int R, int C>
RANKSERVE_AVX512 void dot_block(const float* w, const float* x, int64_t K, int64_t ldx, const float* b, float* y, int64_t ldy,
                                const float* next) {
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_loadu_ps(w + r * K + k);
    if (next != nullptr) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * K + k), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512 xv = _mm512_loadu_ps(x + c * ldx + k);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  if (k < K) {  // the last K % 16 columns
    const __mmask16 mask = tail_mask(K - k);
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(mask, w + r * K + k);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + c * ldx + k);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  // Four weight rows' sums at a time, stored together.
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
#pragma GCC unroll 8
    for (int r = 0; r < R; r += 4) {
      const __m512 zero = _mm512_setzero_ps();
      const __m128 sums = sum_lanes4(acc[r][c], r + 1 < R ? acc[r + 1][c] : zero, r + 2 < R ? acc[r + 2][c] : zero,
                                     r + 3 < R ? acc[r + 3][c] : zero);
      const __mmask8 mask = static_cast<__mmask8>((1u << std::min(4, R - r)) - 1);
      const __m128 bias = b != nullptr ? _mm_maskz_loadu_ps(mask, b + r) : _mm_setzero_ps();
      _mm_mask_storeu_ps(y + c * ldy + r, mask, _mm_add_ps(sums, bias));
    }
  }
}

// dot_block<R, rows> for 1 <= rows <= C.
template <int R, int C = kMaxInputRows>
RANKSERVE_AVX512 void dot_block_of(int64_t rows, const float* w, const float* x, int64_t K, const float* b, float* y, int64_t ldy,
                                   const float* next) {
  if constexpr (C > 1) {
    if (rows < C) return dot_block_of<R, C - 1>(rows, w, x, K, b, y, ldy, next);
  }
  dot_block<R, C>(w, x, K, K, b, y, ldy, next);
}

// All n input rows against weight rows [0, R), in runs of nearly equal length (at most
// kMaxInputRows). The weights stay in L1 after the first run, which fetches `next` meanwhile.
template <int R>
RANKSERVE_AVX512 void rows_block(const float* w, const float* x, int64_t n, int64_t K, const float* b, float* y, int64_t ldy,
                                 const float* next) {
  const int64_t runs = (n + kMaxInputRows - 1) / kMaxInputRows;
  int64_t c = 0;
  for (int64_t i = 0; i < runs; ++i) {
    const int64_t rows = (n - c) / (runs - i);
    dot_block_of<R>(rows, w, x + c * K, K, b, y + c * ldy, ldy, i == 0 ? next : nullptr);
    c += rows;
  }
}

RANKSERVE_AVX512 float dot(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = n - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i), acc);
  }
  return sum_lanes(acc);
}

// out[0, n) += p * v[0, n)
RANKSERVE_AVX512 void add_scaled(float* out, const float* v, float p, int64_t n) {
  const __m512 pv = _mm512_set1_ps(p);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = n - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, mask,
                          _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(mask, v + i), _mm512_maskz_loadu_ps(mask, out + i)));
  }
}

// One head of one decoding sequence; `scores` holds at least past + 1 floats.
RANKSERVE_AVX512 void attend_one(const float* q, const float* k_new, const float* v_new, float* k_cache, float* v_cache,
                                 int64_t past, int64_t token_stride, int64_t d, float* scores, float* out) {
  std::copy(k_new, k_new + d, k_cache + past * token_stride);
  std::copy(v_new, v_new + d, v_cache + past * token_stride);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t <= past; ++t) {
    scores[t] = dot(q, k_cache + t * token_stride, d) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float sum = 0;
  for (int64_t t = 0; t <= past; ++t) sum += scores[t] = std::exp(scores[t] - max_score);
  std::fill(out, out + d, 0.0f);
  for (int64_t t = 0; t <= past; ++t) add_scaled(out, v_cache + t * token_stride, scores[t] / sum, d);
}

// e^x for x <= 0 (0 below -87): 2^n x a degree-6 polynomial of x - n ln 2, |x - n ln 2| <= ln 2 / 2
// (relative error about 1e-7, as float32's).
RANKSERVE_AVX512 __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2 in two parts, for accuracy
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), f);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

RANKSERVE_AVX512 BestToken best_of(const float* x, int64_t n, int64_t usable) {
  // Pass 1: the largest value over all (for the normalizer) and the first largest below `usable`.
  float best = -std::numeric_limits<float>::infinity();
  int64_t token = 0;
  __m512 best_v = _mm512_set1_ps(best);
  int64_t i = 0;
  for (; i + kLanes <= usable; i += kLanes) {
    const __m512 v = _mm512_loadu_ps(x + i);
    if (_mm512_cmp_ps_mask(v, best_v, _CMP_GT_OQ) != 0) {  // rare after the first few: find it exactly
      for (int64_t j = i; j < i + kLanes; ++j) {
        if (x[j] > best) best = x[j], token = j;
      }
      best_v = _mm512_set1_ps(best);
    }
  }
  for (; i < usable; ++i) {
    if (x[i] > best) best = x[i], token = i;
  }
  float top = best;
  for (int64_t j = usable; j < n; ++j) top = std::max(top, x[j]);
  // Pass 2: log of the sum of e^(x - top), and whether any value is NaN or +inf.
  __m512 sum = _mm512_setzero_ps();
  const __m512 top_v = _mm512_set1_ps(top);
  const __m512 inf_v = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __mmask16 unusable = 0;
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 mask = n - j >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(n - j);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
    unusable |= _mm512_cmp_ps_mask(v, inf_v, _CMP_NLT_UQ);  // not below +inf: NaN or +inf
    const __m512 e = exp_nonpositive(_mm512_sub_ps(v, top_v));
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
  }
  if (unusable != 0) return BestToken{token, std::numeric_limits<float>::quiet_NaN()};
  return BestToken{token, x[token] - top - std::log(sum_lanes(sum))};
}

}  // namespace

bool best_token_applies(const at::Tensor& logits) {
  return logits.dim() == 1 && logits.scalar_type() == at::kFloat && logits.is_cpu() && logits.is_contiguous() &&
         cpu_has_avx512f();
}

BestToken best_token(const at::Tensor& logits, int64_t usable) {
  TORCH_CHECK(usable >= 1 && usable <= logits.numel(), "best_token: usable ", usable, " of ", logits.numel());
  return best_of(logits.data_ptr<float>(), logits.numel(), usable);
}

bool cpu_project_applies(const at::Tensor& x, const at::Tensor& w) {
  return x.dim() == 2 && w.dim() == 2 && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && x.is_cpu() &&
         w.is_cpu() && w.is_contiguous() && cpu_has_avx512f();
}

at::Tensor cpu_project(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b_in) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor b = b_in.defined() ? b_in.to(at::kFloat).contiguous() : b_in;
  const int64_t n = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K, "cpu_project: x has ", K, " columns but w has ", w.size(1));
  at::Tensor y = at::empty({n, N}, x.options());
  const float* wp = w.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const int64_t num_blocks = (N + kWeightRows - 1) / kWeightRows;
  // Runs of kChunkRows input rows stay in L2 while the weights stream past them once per run.
  for (int64_t first = 0; first < n; first += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - first);
    const float* xp = x.data_ptr<float>() + first * K;
    float* yp = y.data_ptr<float>() + first * N;
    run_tasks((num_blocks + kBlocksPerTask - 1) / kBlocksPerTask, [&](int64_t task) {
      const int64_t end = std::min(num_blocks, (task + 1) * kBlocksPerTask);
      for (int64_t block = task * kBlocksPerTask; block < end; ++block) {
        const int64_t r = block * kWeightRows;
        if (r + kWeightRows <= N) {
          const float* next = r + 2 * kWeightRows <= N ? wp + (r + kWeightRows) * K : nullptr;
          rows_block<kWeightRows>(wp + r * K, xp, rows, K, bp != nullptr ? bp + r : nullptr, yp + r, N, next);
        } else {
          for (int64_t i = r; i < N; ++i) {
            rows_block<1>(wp + i * K, xp, rows, K, bp != nullptr ? bp + i : nullptr, yp + i, N, nullptr);
          }
        }
      }
    });
  }
  return y;
}

bool decode_attention_applies(const at::Tensor& qkv, const at::Tensor& k_cache) {
  return qkv.scalar_type() == at::kFloat && k_cache.scalar_type() == at::kFloat && qkv.is_cpu() && k_cache.is_cpu() &&
         qkv.is_contiguous() && k_cache.is_contiguous() && cpu_has_avx512f();
}

void decode_attention(const at::Tensor& qkv, std::span<const DecodeAttentionItem> items, int64_t heads, int64_t head_dim,
                      at::Tensor& context) {
  const int64_t width = heads * head_dim;  // of q, of k, of v in a qkv row, and of a context row
  const float* qkv_p = qkv.data_ptr<float>();
  float* context_p = context.data_ptr<float>();
  run_tasks(static_cast<int64_t>(items.size()) * heads, [&](int64_t task) {
    const DecodeAttentionItem& item = items[static_cast<size_t>(task / heads)];
    const int64_t h = task % heads;
    const float* row = qkv_p + item.row * 3 * width + h * head_dim;
    std::vector<float> scores(static_cast<size_t>(item.past + 1));
    attend_one(row, row + width, row + 2 * width, item.k_cache->data_ptr<float>() + h * head_dim,
               item.v_cache->data_ptr<float>() + h * head_dim, item.past, width, head_dim, scores.data(),
               context_p + item.row * width + h * head_dim);
  });
}

}  // namespace rankserve::runtime
