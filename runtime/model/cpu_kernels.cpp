#include "runtime/model/cpu_kernels.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

// GCC 12 reports its own AVX-512 intrinsics' deliberately undefined operands (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace rankserve::runtime {
namespace {

// Only the functions marked RANKSERVE_AVX512 use AVX-512 instructions; callers check the CPU first.
// They are compiled with AVX512_BF16 enabled too: GCC emits its instructions only from the bf16 dot
// product intrinsics, which only Kind::bf16_dot calls, and that kind runs only on CPUs that have them.
#define RANKSERVE_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

// AVX-512F, VL and BW (every CPU with VL has BW: Skylake-SP and later, Zen 4 and later).
bool cpu_has_avx512() {
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return has;
}

bool cpu_has_avx512_bf16() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
  return has;
}

std::atomic<bool> avx512_bf16_allowed{true};

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

// How a projection reads its weights and input rows: float32 weights; bf16 weights against bf16 input
// (AVX512_BF16 dot products of pairs, float32 sums); bf16 weights widened to float32 (bf16 is the top
// half of a float32: a shift) or fp16 weights converted (F16C), each against float32 input.
enum class Kind { f32, bf16_dot, bf16_shift, f16 };

template <Kind kind>
struct KindOf {
  using W = std::conditional_t<kind == Kind::f32, float, uint16_t>;               // a weight's storage
  using X = std::conditional_t<kind == Kind::bf16_dot, uint16_t, float>;          // an input value's storage
  static constexpr int64_t kStep = kind == Kind::bf16_dot ? 2 * kLanes : kLanes;  // columns per product
};

// One step's `kStep` weights (or input values) as a register, widened to float32 except for bf16_dot
// (bf16 pairs); kMasked: only the columns `mask` selects, zeros elsewhere.
template <Kind kind, bool kMasked = false>
RANKSERVE_AVX512 __m512 load_weights(const typename KindOf<kind>::W* w, __mmask32 mask = 0) {
  if constexpr (kind == Kind::f32) {
    return kMasked ? _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), w) : _mm512_loadu_ps(w);
  } else if constexpr (kind == Kind::bf16_dot) {
    return _mm512_castsi512_ps(kMasked ? _mm512_maskz_loadu_epi16(mask, w) : _mm512_loadu_si512(w));
  } else {
    const __m256i half = kMasked ? _mm256_maskz_loadu_epi16(static_cast<__mmask16>(mask), w)
                                 : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    if constexpr (kind == Kind::f16) return _mm512_cvtph_ps(half);
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
  }
}

template <Kind kind, bool kMasked = false>
RANKSERVE_AVX512 __m512 load_input(const typename KindOf<kind>::X* x, __mmask32 mask = 0) {
  if constexpr (kind == Kind::bf16_dot) {
    return _mm512_castsi512_ps(kMasked ? _mm512_maskz_loadu_epi16(mask, x) : _mm512_loadu_si512(x));
  } else {
    return kMasked ? _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), x) : _mm512_loadu_ps(x);
  }
}

template <Kind kind>
RANKSERVE_AVX512 __m512 multiply_add(__m512 w, __m512 x, __m512 acc) {
  if constexpr (kind == Kind::bf16_dot) return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
  else return _mm512_fmadd_ps(w, x, acc);
}

// y[c][r] = x[c] . w[r] (+ b[r]) for R weight rows and C input rows, over k in [0, K). When `next` is
// given, asks for the R x K weights there (the next weight rows) to be brought into L2 meanwhile.
template <Kind kind, int R, int C>
RANKSERVE_AVX512 void dot_block(const typename KindOf<kind>::W* w, const typename KindOf<kind>::X* x, int64_t K, int64_t ldx,
                                const float* b, float* y, int64_t ldy, const typename KindOf<kind>::W* next) {
  constexpr int64_t kStep = KindOf<kind>::kStep;
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + kStep <= K; k += kStep) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = load_weights<kind>(w + r * K + k);
    if (next != nullptr) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * K + k), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512 xv = load_input<kind>(x + c * ldx + k);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = multiply_add<kind>(wv[r], xv, acc[r][c]);
    }
  }
  if (k < K) {  // the last K % kStep columns
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (K - k)) - 1);
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = load_weights<kind, true>(w + r * K + k, mask);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512 xv = load_input<kind, true>(x + c * ldx + k, mask);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = multiply_add<kind>(wv[r], xv, acc[r][c]);
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

// dot_block<kind, R, rows> for 1 <= rows <= C.
template <Kind kind, int R, int C = kMaxInputRows>
RANKSERVE_AVX512 void dot_block_of(int64_t rows, const typename KindOf<kind>::W* w, const typename KindOf<kind>::X* x, int64_t K,
                                   const float* b, float* y, int64_t ldy, const typename KindOf<kind>::W* next) {
  if constexpr (C > 1) {
    if (rows < C) return dot_block_of<kind, R, C - 1>(rows, w, x, K, b, y, ldy, next);
  }
  dot_block<kind, R, C>(w, x, K, K, b, y, ldy, next);
}

// All n input rows against weight rows [0, R), in runs of nearly equal length (at most
// kMaxInputRows). The weights stay in L1 after the first run, which fetches `next` meanwhile.
template <Kind kind, int R>
RANKSERVE_AVX512 void rows_block(const typename KindOf<kind>::W* w, const typename KindOf<kind>::X* x, int64_t n, int64_t K,
                                 const float* b, float* y, int64_t ldy, const typename KindOf<kind>::W* next) {
  const int64_t runs = (n + kMaxInputRows - 1) / kMaxInputRows;
  int64_t c = 0;
  for (int64_t i = 0; i < runs; ++i) {
    const int64_t rows = (n - c) / (runs - i);
    dot_block_of<kind, R>(rows, w, x + c * K, K, b, y + c * ldy, ldy, i == 0 ? next : nullptr);
    c += rows;
  }
}

// One input row (a batch-1 decode step): weight rows one at a time, each read front to back, so the
// weights stream through memory in their stored order. kChains independent sums hide the product's
// latency, and every 64-byte line of a pass is prefetched kPrefetchBytes ahead of the stream, which
// keeps enough lines in flight for one core. Measured on the shared Zen 4 VM (a scratch sweep of a
// 125M model's bf16 projections, one thread, 2026-12-02, loaded): 30-34 GB/s, against 28-29 for two
// sums with a prefetch every other line and 26-27 for OpenBLAS's sgemv over the same bytes.
constexpr int kChains = 4;
constexpr int64_t kLineBytes = 64;
constexpr int64_t kPrefetchBytes = 4096;
constexpr int64_t kRowsPerTask = 32;  // weight rows a thread takes at a time

// y[r] = x . w[r] (+ b[r]) for r in [first, end).
template <Kind kind>
RANKSERVE_AVX512 void dot_rows(const typename KindOf<kind>::W* w, const typename KindOf<kind>::X* x, int64_t K, int64_t first,
                               int64_t end, const float* b, float* y) {
  using W = typename KindOf<kind>::W;
  constexpr int64_t kStep = KindOf<kind>::kStep;
  constexpr int64_t kPass = kChains * kStep;  // columns per pass
  constexpr int64_t kPassBytes = kPass * static_cast<int64_t>(sizeof(W));
  for (int64_t r = first; r < end; ++r) {
    const W* row = w + r * K;
    __m512 acc[kChains];
#pragma GCC unroll 8
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + kPass <= K; k += kPass) {
      const char* ahead = reinterpret_cast<const char*>(row + k) + kPrefetchBytes;
#pragma GCC unroll 8
      for (int64_t line = 0; line < kPassBytes; line += kLineBytes) _mm_prefetch(ahead + line, _MM_HINT_T0);
#pragma GCC unroll 8
      for (int c = 0; c < kChains; ++c) {
        acc[c] = multiply_add<kind>(load_weights<kind>(row + k + c * kStep), load_input<kind>(x + k + c * kStep), acc[c]);
      }
    }
    for (int c = 0; k < K; k += kStep, ++c) {  // fewer than kChains more steps, the last masked when K % kStep != 0
      const __mmask32 mask = K - k >= kStep ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << (K - k)) - 1);
      acc[c] = multiply_add<kind>(load_weights<kind, true>(row + k, mask), load_input<kind, true>(x + k, mask), acc[c]);
    }
    __m512 sum = acc[0];
#pragma GCC unroll 8
    for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
    y[r] = sum_lanes(sum) + (b != nullptr ? b[r] : 0.0f);
  }
}

// y [1, N] = x [1, K] times w [N, K]^T (+ b), split over the intra-op threads by runs of weight rows.
template <Kind kind>
void project_row(const typename KindOf<kind>::W* wp, const typename KindOf<kind>::X* x, int64_t K, int64_t N, const float* bp,
                 float* y) {
  run_tasks((N + kRowsPerTask - 1) / kRowsPerTask,
            [&](int64_t task) { dot_rows<kind>(wp, x, K, task * kRowsPerTask, std::min(N, (task + 1) * kRowsPerTask), bp, y); });
}

// y [n, N] = x [n, K] times w [N, K]^T (+ b), in runs of kChunkRows input rows that stay in L2 while the
// weights stream past them once per run; split over the intra-op threads by blocks of weight rows.
template <Kind kind>
void project_rows(const typename KindOf<kind>::W* wp, const typename KindOf<kind>::X* x, int64_t n, int64_t K, int64_t N,
                  const float* bp, float* y) {
  if (n == 1) return project_row<kind>(wp, x, K, N, bp, y);
  const int64_t num_blocks = (N + kWeightRows - 1) / kWeightRows;
  for (int64_t first = 0; first < n; first += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - first);
    const auto* xp = x + first * K;
    float* yp = y + first * N;
    run_tasks((num_blocks + kBlocksPerTask - 1) / kBlocksPerTask, [&](int64_t task) {
      const int64_t end = std::min(num_blocks, (task + 1) * kBlocksPerTask);
      for (int64_t block = task * kBlocksPerTask; block < end; ++block) {
        const int64_t r = block * kWeightRows;
        if (r + kWeightRows <= N) {
          const auto* next = r + 2 * kWeightRows <= N ? wp + (r + kWeightRows) * K : nullptr;
          rows_block<kind, kWeightRows>(wp + r * K, xp, rows, K, bp != nullptr ? bp + r : nullptr, yp + r, N, next);
        } else {
          for (int64_t i = r; i < N; ++i) {
            rows_block<kind, 1>(wp + i * K, xp, rows, K, bp != nullptr ? bp + i : nullptr, yp + i, N, nullptr);
          }
        }
      }
    });
  }
}

// The values of a float32, bf16 or fp16 tensor (kinds f32, bf16_shift, f16), as stored.
template <Kind kind>
using Stored = typename KindOf<kind>::W;

// a[0, n) . b[0, n), b widened to float32.
template <Kind kind>
RANKSERVE_AVX512 float dot(const float* a, const Stored<kind>* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = n - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), load_weights<kind, true>(b + i, mask), acc);
  }
  return sum_lanes(acc);
}

// Stores the lanes of v that `mask` selects at `to`, rounded to the nearest stored value (ties to
// even; bf16 as ATen rounds it, NaN payloads aside).
template <Kind kind>
RANKSERVE_AVX512 void store_rounded(Stored<kind>* to, __mmask16 mask, __m512 v) {
  if constexpr (kind == Kind::f32) {
    _mm512_mask_storeu_ps(to, mask, v);
  } else if constexpr (kind == Kind::f16) {
    _mm256_mask_storeu_epi16(to, mask, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    _mm256_mask_storeu_epi16(to, mask, _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
  }
}

// to[0, n) = from[0, n), converted (exact copies when the kinds are the same).
template <Kind from_kind, Kind to_kind>
RANKSERVE_AVX512 void convert(const Stored<from_kind>* from, Stored<to_kind>* to, int64_t n) {
  if constexpr (from_kind == to_kind) {
    std::copy(from, from + n, to);
  } else {
    for (int64_t i = 0; i < n; i += kLanes) {
      const __mmask16 mask = n - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
      store_rounded<to_kind>(to + i, mask, load_weights<from_kind, true>(from + i, mask));
    }
  }
}

// Scratch of one head's attention: scores (at least past + 1), and q and the output (head_dim each).
struct AttendScratch {
  float* scores;
  float* q;
  float* out;
};

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

// scores[t] = q . k[t] x scale for t in [0, count), four keys at a time (four independent sums).
template <Kind cache>
RANKSERVE_AVX512 void score_keys(const float* q, const Stored<cache>* k, int64_t count, int64_t token_stride, int64_t d,
                                 float scale, float* scores) {
  int64_t t = 0;
  for (; t + 4 <= count; t += 4) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < d; i += kLanes) {
      const __mmask16 mask = d - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(d - i);
      const __m512 qv = _mm512_maskz_loadu_ps(mask, q + i);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        acc[j] = _mm512_fmadd_ps(qv, load_weights<cache, true>(k + (t + j) * token_stride + i, mask), acc[j]);
      }
    }
    _mm_storeu_ps(scores + t, _mm_mul_ps(sum_lanes4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(scale)));
  }
  for (; t < count; ++t) scores[t] = dot<cache>(q, k + t * token_stride, d) * scale;
}

// scores[0, count) = e^(scores - max), and returns their sum.
RANKSERVE_AVX512 float exp_scores(float* scores, int64_t count, float max_score) {
  const __m512 max_v = _mm512_set1_ps(max_score);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < count; t += kLanes) {
    const __mmask16 mask = count - t >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(count - t);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, scores + t), max_v));
    _mm512_mask_storeu_ps(scores + t, mask, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
  }
  return sum_lanes(sum);
}

// out[0, d) = sum over t in [0, count) of weights[t] x v[t], four values at a time into each part of out.
template <Kind cache>
RANKSERVE_AVX512 void sum_values(const float* weights, const Stored<cache>* v, int64_t count, int64_t token_stride, int64_t d,
                                 float* out) {
  for (int64_t i = 0; i < d; i += kLanes) {
    const __mmask16 mask = d - i >= kLanes ? static_cast<__mmask16>(0xffff) : tail_mask(d - i);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};  // two chains hide the product's latency
    int64_t t = 0;
    for (; t + 2 <= count; t += 2) {
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) {
        acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(weights[t + j]), load_weights<cache, true>(v + (t + j) * token_stride + i, mask),
                                 acc[j]);
      }
    }
    if (t < count)
      acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(weights[t]), load_weights<cache, true>(v + t * token_stride + i, mask), acc[0]);
    _mm512_mask_storeu_ps(out + i, mask, _mm512_add_ps(acc[0], acc[1]));
  }
}

// One head of one decoding sequence, in float32: q, k, v and the output of the activations' kind,
// the caches of theirs.
template <Kind act, Kind cache>
RANKSERVE_AVX512 void attend_one(const Stored<act>* q, const Stored<act>* k_new, const Stored<act>* v_new, Stored<cache>* k_cache,
                                 Stored<cache>* v_cache, int64_t past, int64_t token_stride, int64_t d, AttendScratch scratch,
                                 Stored<act>* out) {
  convert<act, cache>(k_new, k_cache + past * token_stride, d);
  convert<act, cache>(v_new, v_cache + past * token_stride, d);
  convert<act, Kind::f32>(q, scratch.q, d);
  float* scores = scratch.scores;
  const int64_t count = past + 1;
  score_keys<cache>(scratch.q, k_cache, count, token_stride, d, 1.0f / std::sqrt(static_cast<float>(d)), scores);
  const float max_score = *std::max_element(scores, scores + count);
  const float sum = exp_scores(scores, count, max_score);
  const float inverse = 1.0f / sum;
  for (int64_t t = 0; t < count; ++t) scores[t] *= inverse;
  sum_values<cache>(scores, v_cache, count, token_stride, d, scratch.out);
  convert<Kind::f32, act>(scratch.out, out, d);
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
  return logits.dim() == 1 && logits.scalar_type() == at::kFloat && logits.is_cpu() && logits.is_contiguous() && cpu_has_avx512();
}

BestToken best_token(const at::Tensor& logits, int64_t usable) {
  TORCH_CHECK(usable >= 1 && usable <= logits.numel(), "best_token: usable ", usable, " of ", logits.numel());
  return best_of(logits.data_ptr<float>(), logits.numel(), usable);
}

bool cpu_project_applies(const at::Tensor& x, const at::Tensor& w) {
  auto supported = [](at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf; };
  return x.dim() == 2 && w.dim() == 2 && supported(x.scalar_type()) && supported(w.scalar_type()) &&
         (w.scalar_type() != at::kFloat || x.scalar_type() == at::kFloat) && x.is_cpu() && w.is_cpu() && w.is_contiguous() &&
         cpu_has_avx512();
}

void allow_avx512_bf16(bool allowed) { avx512_bf16_allowed = allowed; }

std::string blas_threads_per_call() {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return "the BLAS's own threads (no openblas_set_num_threads)";
  set(1);
  return "OpenBLAS one thread per call, products split over the intra-op threads";
}

std::string cpu_kernels_chosen() {
  if (!cpu_has_avx512()) return "none (no AVX-512F/VL/BW on this CPU: every product runs in ATen)";
  return std::string("fp32 AVX-512 FMA; bf16 weights ") +
         (cpu_has_avx512_bf16() ? "AVX512_BF16 dot products" : "widened to fp32 (no AVX512_BF16 on this CPU)") +
         "; fp16 weights F16C conversion to fp32";
}

at::Tensor cpu_project(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b_in) {
  const int64_t n = x_in.size(0), K = x_in.size(1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K, "cpu_project: x has ", K, " columns but w has ", w.size(1));
  const at::Tensor b = b_in.defined() ? b_in.to(at::kFloat).contiguous() : b_in;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  at::Tensor y = at::empty({n, N}, x_in.options().dtype(at::kFloat));
  float* yp = y.data_ptr<float>();
  const auto* w16 = static_cast<const uint16_t*>(w.data_ptr());
  if (w.scalar_type() == at::kBFloat16 && cpu_has_avx512_bf16() && avx512_bf16_allowed) {
    const at::Tensor x = x_in.to(at::kBFloat16).contiguous();  // no copy when the model computes in bf16
    project_rows<Kind::bf16_dot>(w16, static_cast<const uint16_t*>(x.data_ptr()), n, K, N, bp, yp);
  } else {
    const at::Tensor x = x_in.to(at::kFloat).contiguous();
    const float* xp = x.data_ptr<float>();
    if (w.scalar_type() == at::kFloat) project_rows<Kind::f32>(w.data_ptr<float>(), xp, n, K, N, bp, yp);
    else if (w.scalar_type() == at::kBFloat16) project_rows<Kind::bf16_shift>(w16, xp, n, K, N, bp, yp);
    else project_rows<Kind::f16>(w16, xp, n, K, N, bp, yp);
  }
  return x_in.scalar_type() == at::kFloat ? y : y.to(x_in.scalar_type());
}

namespace {

// From how many input rows BLAS gemm (OpenBLAS, its own thread pool) beats cpu_project: for float32
// weights, and for half-precision ones widened to float32 for the call. bench/project_bench, one
// step's projections of a 125M model on the shared 2-vCPU VM (2026-12-02, loaded; docs/benchmarks.md),
// 1 intra-op thread, cpu_project / BLAS ms: fp32 rows 1 70 / 80 (at::mv), 32 148 / 276, 64 185 / 283,
// 128 588 / 599, 256 1154 / 942, 512 2953 / 2209; fp16 128 616 / 796, 512 2952 / 2845; bf16 (dot
// products) 128 771 / 825, 512 3666 / 1830. With 2 threads BLAS led from 64 rows (fp32 627 / 344).
constexpr int64_t kBlasRows = 128;
constexpr int64_t kBlasRowsWidened = 256;

// Input rows per BLAS call when a product splits over the intra-op threads.
constexpr int64_t kBlasRowsPerTask = 64;

at::Tensor blas_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const at::Tensor xf = x.to(at::kFloat), wf = w.to(at::kFloat), bf = b.defined() ? b.to(at::kFloat) : b;
  if (xf.size(0) == 1) return (bf.defined() ? at::addmv(bf, wf, xf[0]) : at::mv(wf, xf[0])).unsqueeze(0).to(x.scalar_type());
  return rows_linear(xf, wf, bf).to(x.scalar_type());
}

}  // namespace

at::Tensor rows_linear(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b) {
  // Each intra-op thread multiplies its own runs of input rows, one single-threaded BLAS call each.
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({x.size(0), w.size(0)}, x.options());
  const at::Tensor wt = w.t();
  at::parallel_for(0, x.size(0), kBlasRowsPerTask, [&](int64_t first, int64_t end) {
    at::Tensor rows = y.narrow(0, first, end - first);
    if (b.defined()) at::addmm_out(rows, b, x.narrow(0, first, end - first), wt);
    else at::mm_out(rows, x.narrow(0, first, end - first), wt);
  });
  return y;
}

at::Tensor cpu_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (x.size(0) >= (w.scalar_type() == at::kFloat ? kBlasRows : kBlasRowsWidened)) return blas_linear(x, w, b);
  return cpu_project(x, w, b);
}

bool decode_attention_applies(const at::Tensor& qkv, const at::Tensor& k_cache) {
  const at::ScalarType t = qkv.scalar_type(), c = k_cache.scalar_type();
  const bool half_cache = c == at::kBFloat16 || c == at::kHalf;
  return (t == c || (t == at::kFloat && half_cache)) && (t == at::kFloat || half_cache) && qkv.is_cpu() && k_cache.is_cpu() &&
         qkv.is_contiguous() && k_cache.is_contiguous() && cpu_has_avx512();
}

namespace {

template <Kind act, Kind cache>
void decode_attention_of(const at::Tensor& qkv, std::span<const DecodeAttentionItem> items, int64_t heads, int64_t head_dim,
                         at::Tensor& context) {
  using A = Stored<act>;
  using C = Stored<cache>;
  const int64_t width = heads * head_dim;  // of q, of k, of v in a qkv row, and of a context row
  const A* qkv_p = static_cast<const A*>(qkv.data_ptr());
  A* context_p = static_cast<A*>(context.data_ptr());
  run_tasks(static_cast<int64_t>(items.size()) * heads, [&](int64_t task) {
    const DecodeAttentionItem& item = items[static_cast<size_t>(task / heads)];
    const int64_t h = task % heads;
    const A* row = qkv_p + item.row * 3 * width + h * head_dim;
    std::vector<float> scratch(static_cast<size_t>(item.past + 1 + 2 * head_dim));
    float* scores = scratch.data();
    attend_one<act, cache>(row, row + width, row + 2 * width, static_cast<C*>(item.k_cache->data_ptr()) + h * head_dim,
                           static_cast<C*>(item.v_cache->data_ptr()) + h * head_dim, item.past, width, head_dim,
                           AttendScratch{scores, scores + item.past + 1, scores + item.past + 1 + head_dim},
                           context_p + item.row * width + h * head_dim);
  });
}

}  // namespace

void decode_attention(const at::Tensor& qkv, std::span<const DecodeAttentionItem> items, int64_t heads, int64_t head_dim,
                      at::Tensor& context) {
  TORCH_CHECK(context.scalar_type() == qkv.scalar_type() && context.is_contiguous(), "decode_attention: context of type ",
              context.scalar_type(), " for qkv of type ", qkv.scalar_type());
  if (items.empty()) return;
  const at::ScalarType t = qkv.scalar_type(), c = items[0].k_cache->scalar_type();
  if (t == at::kBFloat16) return decode_attention_of<Kind::bf16_shift, Kind::bf16_shift>(qkv, items, heads, head_dim, context);
  if (t == at::kHalf) return decode_attention_of<Kind::f16, Kind::f16>(qkv, items, heads, head_dim, context);
  if (c == at::kBFloat16) return decode_attention_of<Kind::f32, Kind::bf16_shift>(qkv, items, heads, head_dim, context);
  if (c == at::kHalf) return decode_attention_of<Kind::f32, Kind::f16>(qkv, items, heads, head_dim, context);
  return decode_attention_of<Kind::f32, Kind::f32>(qkv, items, heads, head_dim, context);
}

}  // namespace rankserve::runtime
