#include "runtime/model/sampler.h"

#include <doctest/doctest.h>

#include <map>
#include <set>

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

TEST_CASE("min_length blocks EOS until enough tokens are generated") {
  SamplingParams p;
  p.min_length = 3;
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
