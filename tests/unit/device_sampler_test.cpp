// The device sampler (Sampler::pick_with_tensor_ops), run here on CPU tensors, against the CPU sampler.
#include <ATen/CPUGeneratorImpl.h>
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/error.h"
#include "runtime/model/sampler.h"

using namespace rankserve::runtime;

namespace {

at::Tensor ramp() { return at::arange(10, at::kFloat).div(2.0); }

SamplingParams sampling(uint64_t seed) {
  SamplingParams p;
  p.greedy = false;
  p.seed = seed;
  return p;
}

std::vector<int32_t> tensor_draws(SamplingParams p, int n, const at::Tensor& logits = ramp(), int vocab = -1) {
  Sampler s(p, /*eos_token_id=*/-1, vocab);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.pick_with_tensor_ops(logits, {}, i).token);
  return out;
}

// The ErrorCode a pick throws, or nothing.
std::optional<rankserve::ErrorCode> failure(const std::function<void()>& pick) {
  try {
    pick();
  } catch (const rankserve::Error& e) {
    return e.code();
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("greedy tensor-op picks equal the CPU sampler's ids and log-probabilities") {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  const std::vector<int32_t> seen{3, 17, 17, 250};
  for (int trial = 0; trial < 20; ++trial) {
    const at::Tensor logits = at::randn({1000}, g, at::kFloat).mul(3);
    for (float penalty : {1.0f, 1.3f, 0.5f}) {
      for (int min_tokens : {0, 5}) {
        for (int vocab : {-1, 900}) {
          SamplingParams p;
          p.repetition_penalty = penalty;
          p.min_tokens = min_tokens;
          const int eos = static_cast<int>(logits.argmax().item<int64_t>());  // held back while min_tokens applies
          Sampler cpu(p, eos, vocab), tensor_ops(p, eos, vocab);
          const auto a = cpu.pick(logits, seen, 1);
          const auto b = tensor_ops.pick_with_tensor_ops(logits, seen, 1);
          CHECK(a.token == b.token);
          CHECK(std::abs(a.logprob - b.logprob) <= 1e-5f);
        }
      }
    }
  }
}

TEST_CASE("sampled tensor-op picks draw only what the CPU sampler may draw") {
  SamplingParams p = sampling(3);
  p.top_k = 2;
  auto tokens = tensor_draws(p, 300);
  for (int32_t t : tokens) CHECK((t == 8 || t == 9));
  CHECK(std::set<int32_t>(tokens.begin(), tokens.end()).size() == 2);

  const at::Tensor three = at::log(at::tensor({0.5f, 0.3f, 0.2f}));
  p = sampling(4);
  p.top_p = 0.7f;  // tokens 0 and 1
  std::map<int32_t, int> seen;
  for (int32_t t : tensor_draws(p, 2000, three)) ++seen[t];
  CHECK(seen.count(2) == 0);
  CHECK(seen[0] + seen[1] == 2000);
  CHECK(std::abs(seen[0] / 2000.0 - 0.5 / 0.8) < 0.05);  // renormalised over the kept tokens
  p.top_p = 0.4f;
  for (int32_t t : tensor_draws(p, 50, three)) CHECK(t == 0);

  p = sampling(5);
  p.temperature = 0.01f;
  for (int32_t t : tensor_draws(p, 100)) CHECK(t == 9);
  for (int32_t t : tensor_draws(sampling(9), 200, ramp(), /*vocab=*/7)) CHECK(t < 7);
  // Seeds: the same seed repeats its draws, another seed draws others.
  CHECK(tensor_draws(sampling(1), 50) == tensor_draws(sampling(1), 50));
  CHECK(tensor_draws(sampling(1), 50) != tensor_draws(sampling(2), 50));
  // Without processing both samplers draw from the same distribution.
  std::map<int32_t, int> cpu_seen, tensor_seen;
  Sampler cpu(sampling(6), -1);
  for (int i = 0; i < 3000; ++i) ++cpu_seen[cpu.pick(three, {}, i).token];
  for (int32_t t : tensor_draws(sampling(6), 3000, three)) ++tensor_seen[t];
  for (int t = 0; t < 3; ++t) CHECK(std::abs(cpu_seen[t] - tensor_seen[t]) < 150);
}

TEST_CASE("extreme sampling values draw a valid token through tensor ops too") {
  constexpr float tiny = std::numeric_limits<float>::denorm_min(), huge = std::numeric_limits<float>::max();
  const std::vector<int32_t> seen{9, 3};
  for (const at::Tensor& logits : {ramp(), ramp().mul(1e30), ramp().sub(5).mul(3e37)}) {
    for (float temperature : {tiny, 1e-30f, 1.0f, huge}) {
      for (float top_p : {tiny, 0.5f, 1.0f}) {
        for (float penalty : {tiny, 1.0f, huge}) {
          SamplingParams p = sampling(11);
          p.temperature = temperature;
          p.top_p = top_p;
          p.repetition_penalty = penalty;
          const auto choice = Sampler(p, -1).pick_with_tensor_ops(logits, seen, 0);
          CHECK_MESSAGE((choice.token >= 0 && choice.token < 10), temperature << " " << top_p << " " << penalty);
          CHECK(std::isfinite(choice.logprob));
        }
      }
    }
  }
}

TEST_CASE("non-finite logits and nothing left to draw fail both samplers with the same error") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::pair<SamplingParams, at::Tensor>> cases;
  for (float bad : {nan, inf}) {
    at::Tensor logits = ramp();
    logits[4] = bad;
    cases.emplace_back(SamplingParams{}, logits);
    cases.emplace_back(sampling(15), logits);
  }
  cases.emplace_back(SamplingParams{}, at::full({10}, -inf));
  cases.emplace_back(sampling(15), at::full({10}, -inf));
  SamplingParams cold = sampling(16);
  cold.temperature = 0;
  cases.emplace_back(cold, ramp());
  for (const auto& [p, logits] : cases) {
    const auto cpu = failure([&] { Sampler(p, -1).pick(logits, {}, 0); });
    const auto tensor_ops = failure([&] { Sampler(p, -1).pick_with_tensor_ops(logits, {}, 0); });
    REQUIRE(cpu.has_value());
    CHECK(tensor_ops == cpu);
  }
  // Every id excluded: one sampleable id, and it is the EOS min_tokens holds back.
  SamplingParams p = sampling(16);
  p.min_tokens = 1;
  CHECK(failure([&] { Sampler(p, 0, 1).pick_with_tensor_ops(ramp(), {}, 0); }) == rankserve::ErrorCode::bad_request);
  // A -inf logit only rules its token out.
  at::Tensor masked = ramp();
  masked[9] = -inf;
  CHECK(Sampler(SamplingParams{}, -1).pick_with_tensor_ops(masked, {}, 0).token == 8);
  for (int32_t t : tensor_draws(sampling(17), 100, masked)) CHECK(t != 9);
}
