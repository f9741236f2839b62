#include "runtime/model/cpu_kernels.h"

#include <doctest/doctest.h>

#include <cmath>
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

TEST_CASE("decode_attention appends each sequence's k and v and attends over its whole cache") {
  at::manual_seed(2);
  const int64_t heads = 3;
  for (int64_t head_dim : {64, 20}) {
    CAPTURE(head_dim);
    const int64_t width = heads * head_dim;
    const std::vector<int64_t> pasts{0, 5, 17};
    std::vector<at::Tensor> k_caches, v_caches;
    for (size_t i = 0; i < pasts.size(); ++i) {
      k_caches.push_back(at::randn({20, heads, head_dim}));
      v_caches.push_back(at::randn({20, heads, head_dim}));
    }
    const at::Tensor qkv = at::randn({static_cast<int64_t>(pasts.size()), 3 * width});
    if (!decode_attention_applies(qkv, k_caches[0])) {
      MESSAGE("this CPU has no AVX-512F: decode_attention is not used here");
      return;
    }
    std::vector<at::Tensor> expected;  // computed before the kernel writes into the caches
    for (size_t i = 0; i < pasts.size(); ++i) {
      const int64_t past = pasts[i], row = static_cast<int64_t>(i);
      auto parts = qkv[row].reshape({3, heads, head_dim});
      at::Tensor keys = at::cat({k_caches[i].narrow(0, 0, past), parts[1].unsqueeze(0)}).transpose(0, 1);  // [h, t, d]
      at::Tensor values = at::cat({v_caches[i].narrow(0, 0, past), parts[2].unsqueeze(0)}).transpose(0, 1);
      at::Tensor scores = at::matmul(parts[0].unsqueeze(1), keys.transpose(1, 2)) / std::sqrt(static_cast<double>(head_dim));
      expected.push_back(at::matmul(at::softmax(scores, -1), values).reshape({width}));
    }
    std::vector<DecodeAttentionItem> items;
    for (size_t i = 0; i < pasts.size(); ++i) items.push_back({static_cast<int64_t>(i), pasts[i], &k_caches[i], &v_caches[i]});
    at::Tensor context = at::empty({static_cast<int64_t>(pasts.size()), width});
    decode_attention(qkv, items, heads, head_dim, context);
    for (size_t i = 0; i < pasts.size(); ++i) {
      const int64_t row = static_cast<int64_t>(i);
      CHECK(at::allclose(context[row], expected[i], 1e-4, 1e-5));
      auto parts = qkv[row].reshape({3, heads, head_dim});
      CHECK(at::equal(k_caches[i][pasts[i]], parts[1]));
      CHECK(at::equal(v_caches[i][pasts[i]], parts[2]));
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
