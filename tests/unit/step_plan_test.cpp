#include "runtime/serving/step_plan.h"

#include <doctest/doctest.h>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::runtime;

TEST_CASE("a step plan survives encoding and decoding") {
  StepPlan plan;
  plan.run = true;
  plan.prompt_token_budget = 512;
  plan.gather_slots = 128;
  plan.leaves = {3, 9};
  SamplingParams sampling{false, 0.7f, 40, 0.9f, 1.1f, 5, 1234};
  plan.joins.push_back({1, SequenceSpec{42, {50256, 464, 3290}, 30, sampling}});
  plan.joins.push_back({0, SequenceSpec{43, {2}, 1, SamplingParams{}}});
  const StepPlan back = decode_plan(encode_plan(plan));
  CHECK(back.command == PlanCommand::step);
  CHECK(back.run);
  CHECK(back.prompt_token_budget == 512);
  CHECK(back.gather_slots == 128);
  CHECK(back.leaves == plan.leaves);
  REQUIRE(back.joins.size() == 2);
  CHECK(back.joins[0].dp_rank == 1);
  CHECK(back.joins[0].sequence.id == 42);
  CHECK(back.joins[0].sequence.prompt == std::vector<int32_t>{50256, 464, 3290});
  CHECK(back.joins[0].sequence.max_new_tokens == 30);
  CHECK(back.joins[0].sequence.sampling.temperature == doctest::Approx(0.7f));
  CHECK(back.joins[0].sequence.sampling.top_k == 40);
  CHECK(back.joins[0].sequence.sampling.seed == 1234);
  CHECK_FALSE(back.joins[0].sequence.sampling.greedy);
  CHECK(back.joins[1].sequence.prompt == std::vector<int32_t>{2});
}

TEST_CASE("a shutdown plan decodes as shutdown") {
  StepPlan plan;
  plan.command = PlanCommand::shutdown;
  CHECK(decode_plan(encode_plan(plan)).command == PlanCommand::shutdown);
}

TEST_CASE("a truncated or padded plan is refused, not misread") {
  StepPlan plan;
  plan.joins.push_back({0, SequenceSpec{1, {1, 2, 3}, 4, SamplingParams{}}});
  std::vector<std::byte> bytes = encode_plan(plan);
  std::vector<std::byte> cut(bytes.begin(), bytes.end() - 3);
  CHECK_THROWS_AS(decode_plan(cut), Error);
  bytes.push_back(std::byte{0});
  CHECK_THROWS_AS(decode_plan(bytes), Error);
  std::vector<std::byte> garbage(40, std::byte{0xff});
  CHECK_THROWS_AS(decode_plan(garbage), Error);
}
