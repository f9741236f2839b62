#include "runtime/model/cpu_kernels.h"

#include <doctest/doctest.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <string>
#include <vector>

using namespace rankserve::runtime;

TEST_CASE("cpu_project matches at::linear for any number of rows, widths off the vector size, and no bias") {
  at::manual_seed(1);
  if (!cpu_project_applies(at::zeros({1, 16}), at::zeros({4, 16}))) {
    MESSAGE("this CPU has no AVX-512F: cpu_project is not used here");
    return;
  }
  for (int64_t rows : {1, 3, 4, 5, 9, 64, 65, 130}) {
    for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{24, 768}, {13, 37}, {50, 3072}}) {
      CAPTURE(rows);
      CAPTURE(out);
      CAPTURE(in);
      const at::Tensor x = at::randn({rows, in}), w = at::randn({out, in}), b = at::randn({out});
      CHECK(at::allclose(cpu_project(x, w, b), at::linear(x, w, b), 1e-4, 1e-3));
      CHECK(at::allclose(cpu_project(x, w, {}), at::linear(x, w), 1e-4, 1e-3));
    }
  }
}

TEST_CASE("cpu_project takes a non-contiguous input") {
  const at::Tensor x = at::randn({32, 5}).t(), w = at::randn({7, 32});
  if (!cpu_project_applies(x, w)) return;
  CHECK(at::allclose(cpu_project(x, w, {}), at::linear(x, w), 1e-4, 1e-4));
}

namespace {

bool has_avx512_bf16() { return cpu_kernels_chosen().find("AVX512_BF16 dot products") != std::string::npos; }

// |got - want| <= rel x (|x| |w|^T + |b|) + 1e-5 everywhere: rel bounds the relative rounding of each
// product and of the result, so it holds for any summation order.
void check_close(const at::Tensor& got, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double rel) {
  const at::Tensor xf = x.to(at::kFloat), wf = w.to(at::kFloat), bf = b.defined() ? b.to(at::kFloat) : at::Tensor();
  const at::Tensor want = at::linear(xf, wf, bf), scale = at::linear(xf.abs(), wf.abs(), bf.defined() ? bf.abs() : bf);
  const bool same_type = got.scalar_type() == x.scalar_type();
  REQUIRE(same_type);
  const at::Tensor excess = (got.to(at::kFloat) - want).abs() - scale.mul(rel).add(1e-5);
  CHECK(excess.max().item<float>() <= 0);
}

}  // namespace

TEST_CASE("cpu_project with bf16 and fp16 weights matches at::linear of the weights widened to float32") {
  at::manual_seed(4);
  if (!cpu_project_applies(at::zeros({1, 16}), at::zeros({4, 16}, at::kBFloat16))) {
    MESSAGE("this CPU has no AVX-512F/VL/BW: cpu_project is not used here");
    return;
  }
  if (!has_avx512_bf16()) MESSAGE("this CPU has no AVX512_BF16: both bf16 runs take the portable path");
  for (at::ScalarType w_type : {at::kBFloat16, at::kHalf}) {
    for (bool dot_products : {true, false}) {
      if (w_type == at::kHalf && !dot_products) continue;
      allow_avx512_bf16(dot_products);
      for (at::ScalarType x_type : {at::kFloat, w_type}) {
        for (int64_t rows : {1, 2, 8, 32, 65}) {
          for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{24, 768}, {13, 37}, {50, 3072}, {7, 1}, {9, 47}}) {
            INFO("w_type " << c10::toString(w_type));
            CAPTURE(dot_products);
            INFO("x_type " << c10::toString(x_type));
            CAPTURE(rows);
            CAPTURE(out);
            CAPTURE(in);
            const at::Tensor x = at::randn({rows, in}).to(x_type), w = at::randn({out, in}).to(w_type),
                             b = at::randn({out}).to(w_type);
            // Exact products summed in float32 (1e-5), unless x is rounded to bf16 for the dot products
            // or the result is rounded to x's type (half a unit in the last place: 2^-9 bf16, 2^-11 fp16).
            const bool rounds_x = w_type == at::kBFloat16 && dot_products && has_avx512_bf16();
            const double rel = x_type == at::kBFloat16 || rounds_x ? 1.0 / 256 : x_type == at::kHalf ? 1.0 / 1024 : 1e-5;
            check_close(cpu_project(x, w, b), x, w, b, rel);
            check_close(cpu_project(x, w, {}), x, w, at::zeros({out}), rel);
          }
        }
      }
    }
  }
  allow_avx512_bf16(true);
}

TEST_CASE("allow_avx512_bf16(false) switches bf16 weights to the portable path") {
  if (!has_avx512_bf16()) {
    MESSAGE("this CPU has no AVX512_BF16: there is one bf16 path only");
    return;
  }
  at::manual_seed(5);
  // Float32 input: the dot products round it to bf16, the portable path does not.
  const at::Tensor x = at::randn({3, 100}), w = at::randn({10, 100}).to(at::kBFloat16);
  const at::Tensor dot = cpu_project(x, w, {});
  allow_avx512_bf16(false);
  const at::Tensor portable = cpu_project(x, w, {});
  allow_avx512_bf16(true);
  CHECK(!at::equal(dot, portable));
  CHECK(at::allclose(portable, at::linear(x, w.to(at::kFloat)), 1e-5, 1e-4));
}

TEST_CASE("cpu_project of one input row matches at::linear for every weight type on 1 and 2 intra-op threads") {
  if (!cpu_project_applies(at::zeros({1, 16}), at::zeros({4, 16}))) return;
  at::manual_seed(7);
  const int threads = at::get_num_threads();
  for (int num_threads : {1, 2}) {
    at::set_num_threads(num_threads);
    for (at::ScalarType w_type : {at::kFloat, at::kBFloat16, at::kHalf}) {
      // Output rows over several runs of rows per thread, and widths of whole, part and no four-step passes
      // (255: the longest tail, four steps after whole passes, for 16 and for 32 columns a step).
      for (auto [out, in] :
           std::vector<std::pair<int64_t, int64_t>>{{1000, 768}, {97, 3072}, {70, 40}, {33, 17}, {5, 95}, {9, 255}}) {
        CAPTURE(num_threads);
        INFO("w_type " << c10::toString(w_type));
        CAPTURE(out);
        CAPTURE(in);
        const at::Tensor x = at::randn({1, in}), w = at::randn({out, in}).to(w_type), b = at::randn({out});
        const bool rounds_x = w_type == at::kBFloat16 && has_avx512_bf16();
        check_close(cpu_project(x, w, b), x, w, b, rounds_x ? 1.0 / 256 : 1e-5);
        check_close(cpu_project(x, w, {}), x, w, at::zeros({out}), rounds_x ? 1.0 / 256 : 1e-5);
      }
    }
  }
  at::set_num_threads(threads);
}

TEST_CASE("cpu_linear and rows_linear match at::linear on 1 and 2 intra-op threads, for decode and prefill rows") {
  if (!cpu_project_applies(at::zeros({1, 16}), at::zeros({4, 16}))) return;
  at::manual_seed(6);
  CHECK(!blas_threads_per_call().empty());  // as the engine runs: BLAS single-threaded, prefill rows split over the threads
  const int threads = at::get_num_threads();
  for (int num_threads : {1, 2}) {
    at::set_num_threads(num_threads);
    for (at::ScalarType type : {at::kFloat, at::kBFloat16, at::kHalf}) {
      for (int64_t rows : {1, 8, 600}) {
        CAPTURE(num_threads);
        INFO("type " << c10::toString(type));
        CAPTURE(rows);
        const at::Tensor x = at::randn({rows, 70}).to(type), w = at::randn({30, 70}).to(type), b = at::randn({30}).to(type);
        check_close(cpu_linear(x, w, b), x, w, b, type == at::kFloat ? 1e-5 : 1.0 / 256);
        check_close(cpu_linear(x, w, {}), x, w, {}, type == at::kFloat ? 1e-5 : 1.0 / 256);  // no bias
        if (rows > 1 && type != at::kHalf) {  // ATen's product in x's type (CPU ATen 1.13 has none for fp16)
          check_close(rows_linear(x, w, b), x, w, b, type == at::kFloat ? 1e-5 : 1.0 / 64);
        }
      }
    }
  }
  at::set_num_threads(threads);
}

TEST_CASE("decode_attention appends each sequence's k and v and attends over its whole cache") {
  at::manual_seed(2);
  const int64_t heads = 3;
  // (qkv's type, the caches' type): the model's, and fp16 caches of float32 activations (--dtype fp16).
  for (auto [type, cache_type] : std::vector<std::pair<at::ScalarType, at::ScalarType>>{{at::kFloat, at::kFloat},
                                                                                        {at::kBFloat16, at::kBFloat16},
                                                                                        {at::kHalf, at::kHalf},
                                                                                        {at::kFloat, at::kHalf},
                                                                                        {at::kFloat, at::kBFloat16}}) {
    for (int64_t head_dim : {64, 20}) {
      INFO("type " << c10::toString(type) << ", caches " << c10::toString(cache_type));
      CAPTURE(head_dim);
      const int64_t width = heads * head_dim;
      const std::vector<int64_t> pasts{0, 5, 17};
      std::vector<at::Tensor> k_caches, v_caches;
      for (size_t i = 0; i < pasts.size(); ++i) {
        k_caches.push_back(at::randn({20, heads, head_dim}).to(cache_type));
        v_caches.push_back(at::randn({20, heads, head_dim}).to(cache_type));
      }
      const at::Tensor qkv = at::randn({static_cast<int64_t>(pasts.size()), 3 * width}).to(type);
      if (!decode_attention_applies(qkv, k_caches[0])) {
        MESSAGE("this CPU has no AVX-512F/VL/BW: decode_attention is not used here");
        return;
      }
      std::vector<at::Tensor> expected;  // in float32, computed before the kernel writes into the caches
      for (size_t i = 0; i < pasts.size(); ++i) {
        const int64_t past = pasts[i], row = static_cast<int64_t>(i);
        auto parts = qkv[row].to(at::kFloat, false, true).reshape({3, heads, head_dim});  // a copy
        parts[1] = parts[1].to(cache_type).to(at::kFloat);                                // k and v as cached
        parts[2] = parts[2].to(cache_type).to(at::kFloat);
        at::Tensor keys =
            at::cat({k_caches[i].narrow(0, 0, past).to(at::kFloat), parts[1].unsqueeze(0)}).transpose(0, 1);  // [h, t, d]
        at::Tensor values = at::cat({v_caches[i].narrow(0, 0, past).to(at::kFloat), parts[2].unsqueeze(0)}).transpose(0, 1);
        at::Tensor scores = at::matmul(parts[0].unsqueeze(1), keys.transpose(1, 2)) / std::sqrt(static_cast<double>(head_dim));
        expected.push_back(at::matmul(at::softmax(scores, -1), values).reshape({width}));
      }
      std::vector<DecodeAttentionItem> items;
      for (size_t i = 0; i < pasts.size(); ++i) items.push_back({static_cast<int64_t>(i), pasts[i], &k_caches[i], &v_caches[i]});
      at::Tensor context = at::empty({static_cast<int64_t>(pasts.size()), width}, qkv.options());
      decode_attention(qkv, items, heads, head_dim, context);
      // The outputs (|v| < 5 here) are rounded to the type: half a unit in the last place.
      const double atol = type == at::kBFloat16 ? 5.0 / 512 : type == at::kHalf ? 5.0 / 2048 : 1e-5;
      for (size_t i = 0; i < pasts.size(); ++i) {
        const int64_t row = static_cast<int64_t>(i);
        CHECK(at::allclose(context[row].to(at::kFloat), expected[i], 1e-4, atol));
        auto parts = qkv[row].reshape({3, heads, head_dim}).to(cache_type);
        CHECK(at::equal(k_caches[i][pasts[i]], parts[1]));
        CHECK(at::equal(v_caches[i][pasts[i]], parts[2]));
      }
    }
  }
}

TEST_CASE("best_token picks the first largest usable logit and its log-probability over all logits") {
  at::manual_seed(3);
  for (int64_t n : {1, 15, 16, 17, 1000, 50272}) {
    for (int64_t usable : {n, std::max<int64_t>(1, n - 9)}) {
      CAPTURE(n);
      CAPTURE(usable);
      at::Tensor logits = at::randn({n}).mul(8);
      if (n > 20) logits[n - 1] = 100.0f;         // the largest overall may lie past `usable`
      if (n > 20) logits[7] = logits[3] = 50.0f;  // a tie: the first wins
      if (!best_token_applies(logits)) return;
      const BestToken best = best_token(logits, usable);
      CHECK(best.token == logits.narrow(0, 0, usable).argmax().item<int64_t>());
      CHECK(best.logprob == doctest::Approx(at::log_softmax(logits, -1)[best.token].item<float>()).epsilon(1e-5));
    }
  }
}
