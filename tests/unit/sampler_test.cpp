#include "runtime/model/sampler.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"

using namespace rankserve::runtime;

namespace {

// logits 0..9 with token 9 the most likely
at::Tensor ramp() { return at::arange(10, at::kFloat).div(2.0); }

SamplingParams sampling(uint64_t seed) {
  SamplingParams p;
  p.greedy = false;
  p.seed = seed;
  return p;
}

std::vector<int32_t> draws(SamplingParams p, int n, at::Tensor logits = ramp()) {
  Sampler s(p, /*eos_token_id=*/-1);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.pick(logits, {}, i).token);
  return out;
}

}  // namespace

TEST_CASE("greedy picks the argmax and reports the model's log-probability") {
  Sampler s(SamplingParams{}, -1);
  auto choice = s.pick(ramp(), {}, 0);
  CHECK(choice.token == 9);
  CHECK(choice.logprob == doctest::Approx(at::log_softmax(ramp(), -1)[9].item<float>()));
}

TEST_CASE("the same seed draws the same tokens and another seed other tokens") {
  CHECK(draws(sampling(1), 50) == draws(sampling(1), 50));
  CHECK(draws(sampling(1), 50) != draws(sampling(2), 50));
}

TEST_CASE("top-k never draws outside the k most likely tokens") {
  SamplingParams p = sampling(3);
  p.top_k = 2;
  const auto tokens = draws(p, 300);
  for (int32_t t : tokens) CHECK((t == 8 || t == 9));
  CHECK(std::set<int32_t>(tokens.begin(), tokens.end()).size() == 2);
}

TEST_CASE("top-p keeps the smallest set of likely tokens reaching the mass") {
  // probabilities 0.5, 0.3, 0.2 for tokens 0, 1, 2
  at::Tensor logits = at::log(at::tensor({0.5f, 0.3f, 0.2f}));
  SamplingParams p = sampling(4);
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1
  std::map<int32_t, int> seen;
  for (int32_t t : draws(p, 400, logits)) ++seen[t];
  CHECK(seen.count(2) == 0);
  CHECK(seen[0] > 0);
  CHECK(seen[1] > 0);
  p.top_p = 0.4f;  // the most likely token alone
  for (int32_t t : draws(p, 50, logits)) CHECK(t == 0);
}

TEST_CASE("a low temperature concentrates on the argmax") {
  SamplingParams p = sampling(5);
  p.temperature = 0.01f;
  for (int32_t t : draws(p, 100)) CHECK(t == 9);
}

TEST_CASE("repetition penalty makes tokens already in the sequence less likely") {
  SamplingParams p;
  p.repetition_penalty = 10.0f;
  Sampler s(p, -1);
  const std::vector<int32_t> seen{9};
  CHECK(s.pick(ramp(), seen, 0).token == 8);
}

TEST_CASE("min_tokens blocks EOS until enough tokens are generated") {
  SamplingParams p;
  p.min_tokens = 3;
  Sampler s(p, /*eos_token_id=*/9);
  CHECK(s.pick(ramp(), {}, 0).token == 8);
  CHECK(s.pick(ramp(), {}, 2).token == 8);
  CHECK(s.pick(ramp(), {}, 3).token == 9);
}

TEST_CASE("padded vocabulary rows past the tokenizer's size are never picked") {
  Sampler greedy(SamplingParams{}, -1, /*sampleable_vocab=*/7);
  CHECK(greedy.pick(ramp(), {}, 0).token == 6);
  SamplingParams p = sampling(9);
  Sampler sampled(p, -1, 7);
  for (int i = 0; i < 200; ++i) CHECK(sampled.pick(ramp(), {}, i).token < 7);
}

TEST_CASE("any finite float32 temperature, top_p and penalty draws a token instead of aborting") {
  constexpr float tiny = std::numeric_limits<float>::denorm_min(), huge = std::numeric_limits<float>::max();
  const std::vector<int32_t> seen{9, 3};
  for (const at::Tensor& logits : {ramp(), ramp().mul(1e30), ramp().sub(5).mul(3e37)}) {
    for (float temperature : {tiny, std::numeric_limits<float>::min(), 1e-30f, 1.0f, 3e38f, huge}) {
      for (float top_p : {tiny, 1e-20f, 0.5f, 1.0f}) {
        for (float penalty : {tiny, 1e-30f, 1.0f, 1e30f, huge}) {
          SamplingParams p = sampling(11);
          p.temperature = temperature;
          p.top_p = top_p;
          p.repetition_penalty = penalty;
          Sampler s(p, -1);
          const auto choice = s.pick(logits, seen, 0);
          CHECK_MESSAGE((choice.token >= 0 && choice.token < 10), temperature << " " << top_p << " " << penalty);
          CHECK(std::isfinite(choice.logprob));
        }
      }
    }
  }
  // A vanishing temperature is greedy: the best logit alone survives the division.
  SamplingParams p = sampling(12);
  p.temperature = tiny;
  for (int32_t t : draws(p, 20, ramp().mul(1e30))) CHECK(t == 9);
}

TEST_CASE("unusable sampling values and non-finite logits fail the pick with rankserve's error") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (float temperature : {0.0f, -1.0f, nan, inf}) {
    SamplingParams p = sampling(13);
    p.temperature = temperature;
    CHECK_THROWS_AS(Sampler(p, -1).pick(ramp(), {}, 0), rankserve::Error);
  }
  for (float top_p : {0.0f, nan, 1.5f}) {
    SamplingParams p = sampling(14);
    p.top_p = top_p;
    CHECK_THROWS_AS(Sampler(p, -1).pick(ramp(), {}, 0), rankserve::Error);
  }
  for (float penalty : {0.0f, nan, inf}) {
    SamplingParams p;
    p.repetition_penalty = penalty;
    CHECK_THROWS_AS(Sampler(p, -1).pick(ramp(), std::vector<int32_t>{1}, 0), rankserve::Error);
  }
  for (float bad : {nan, inf}) {
    at::Tensor logits = ramp();
    logits[4] = bad;
    CHECK_THROWS_AS(Sampler(SamplingParams{}, -1).pick(logits, {}, 0), rankserve::Error);
    CHECK_THROWS_AS(Sampler(sampling(15), -1).pick(logits, {}, 0), rankserve::Error);
    CHECK_THROWS_AS(Sampler(sampling(15), -1, 4).pick(logits.narrow(0, 0, 6).contiguous(), {}, 0), rankserve::Error);
  }
  // A -inf logit only rules its token out; all of them leave nothing to pick.
  at::Tensor masked = ramp();
  masked[9] = -inf;
  CHECK(Sampler(SamplingParams{}, -1).pick(masked, {}, 0).token == 8);
  CHECK(Sampler(sampling(15), -1).pick(masked, {}, 0).token != 9);
  CHECK_THROWS_AS(Sampler(SamplingParams{}, -1).pick(at::full({10}, -inf), {}, 0), rankserve::Error);
  CHECK_THROWS_AS(Sampler(sampling(15), -1).pick(at::full({10}, -inf), {}, 0), rankserve::Error);
  // Every id excluded (one sampleable id, and it is the EOS min_tokens holds back).
  SamplingParams p = sampling(16);
  p.min_tokens = 1;
  CHECK_THROWS_AS(Sampler(p, /*eos_token_id=*/0, /*sampleable_vocab=*/1).pick(ramp(), {}, 0), rankserve::Error);
}
