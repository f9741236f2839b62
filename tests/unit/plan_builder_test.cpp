#include "runtime/serving/plan_builder.h"

#include <doctest/doctest.h>

#include "tests/support/serving_fixtures.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::serving_request;
using rankserve::testing::sink_of;

namespace {

struct Fixture {
  AdmissionQueue queue{16};
  RunningSet running{2};
  PlanOptions options{64, PlacementLimits{2, 0}};
  Fixture() { queue.set_serving(true); }
  std::shared_ptr<ServingRequest> queued(RequestId id, int prompt_tokens = 3, int max_tokens = 4) {
    auto r = serving_request(id, prompt_tokens, max_tokens);
    queue.push(r);
    return r;
  }
  PlanDraft plan() { return build_plan(queue, running, options, Clock::now()); }
};

std::vector<int> dp_ranks_of(const StepPlan& plan) {
  std::vector<int> ranks;
  for (const PlanJoin& j : plan.joins) ranks.push_back(j.dp_rank);
  return ranks;
}

}  // namespace

TEST_CASE("an idle service's plan is a step that runs nothing, with the budget and gather slots set") {
  Fixture f;
  const PlanDraft d = f.plan();
  CHECK(d.plan.command == PlanCommand::step);
  CHECK_FALSE(d.plan.run);
  CHECK(d.plan.prompt_token_budget == 64);
  CHECK(d.plan.gather_slots == 2);
  CHECK(d.plan.joins.empty());
  CHECK(d.plan.leaves.empty());
  CHECK(d.ended.empty());
}

TEST_CASE("queued requests join oldest first, spread over the copies, until every slot is taken") {
  Fixture f;
  for (RequestId id = 1; id <= 5; ++id) f.queued(id, static_cast<int>(id));
  const PlanDraft d = f.plan();
  CHECK(d.plan.run);
  REQUIRE(d.plan.joins.size() == 4);
  CHECK(dp_ranks_of(d.plan) == std::vector<int>{0, 1, 0, 1});
  CHECK(d.plan.joins[0].sequence.id == 1);
  CHECK(d.plan.joins[3].sequence.id == 4);
  CHECK(d.plan.joins[2].sequence.prompt == std::vector<int32_t>{1, 2, 3});
  CHECK(d.plan.joins[2].sequence.max_tokens == 4);
  CHECK(d.prompt_tokens == 1 + 2 + 3 + 4);
  CHECK(f.queue.size() == 1);  // request 5 waits for a slot
  CHECK(f.running.copy(1)[1]->id == 4);
}

TEST_CASE("a request that fits no copy's KV budget waits, and so do the ones behind it") {
  Fixture f;
  f.options.limits = PlacementLimits{4, 20};
  f.queued(1, 10, 5);  // 15 tokens
  f.queued(2, 10, 5);
  f.queued(3, 10, 5);  // fits nowhere once 1 and 2 run
  f.queued(4, 1, 1);   // would fit, but joins only after 3
  const PlanDraft d = f.plan();
  CHECK(dp_ranks_of(d.plan) == std::vector<int>{0, 1});
  CHECK(f.queue.front()->id == 3);
  CHECK(f.queue.size() == 2);
}

TEST_CASE("finished requests' leaves come first, then those that end, and a cancelled one gets its event") {
  Fixture f;
  auto a = f.queued(1), b = f.queued(2), c = f.queued(3);
  f.plan();             // a, c on copy 0; b on copy 1
  f.running.leave(*a);  // a finished (delivery)
  f.queue.cancel(3);
  const PlanDraft d = f.plan();
  CHECK(d.plan.leaves == std::vector<uint64_t>{1, 3});
  REQUIRE(d.ended.size() == 1);
  CHECK(d.ended[0].request == c);
  CHECK(d.ended[0].event.reason == FinishReason::cancelled);
  CHECK(d.plan.run);  // b still runs
  CHECK(f.running.num_running() == 1);
  CHECK(sink_of(*c).num_finishes == 0);  // the caller finishes it, outside the lock
  CHECK(f.plan().plan.leaves.empty());   // leaves are sent once
}

TEST_CASE("a cancelled queued request never joins") {
  Fixture f;
  f.queued(1);
  f.queued(2);
  f.queue.cancel(1);
  const PlanDraft d = f.plan();
  REQUIRE(d.plan.joins.size() == 1);
  CHECK(d.plan.joins[0].sequence.id == 2);
  CHECK(d.plan.joins[0].dp_rank == 0);
  REQUIRE(d.ended.size() == 1);
  CHECK(d.ended[0].request->id == 1);
  CHECK(d.plan.leaves.empty());  // it never reached an engine
}

TEST_CASE("stopping ends every request and shuts down at once") {
  Fixture f;
  f.queued(1);
  f.plan();
  f.queued(2);
  f.queue.stop("--shutdown-timeout=5 s passed");
  const PlanDraft d = f.plan();
  CHECK(d.plan.command == PlanCommand::shutdown);
  CHECK_FALSE(d.plan.run);
  CHECK(d.plan.joins.empty());
  CHECK(d.plan.leaves == std::vector<uint64_t>{1});
  REQUIRE(d.ended.size() == 2);  // the running one first, then the queued one
  CHECK(d.ended[0].request->id == 1);
  CHECK(d.ended[1].request->id == 2);
  CHECK(d.ended[1].event.error_message == "server: stopped before the request finished (--shutdown-timeout=5 s passed)");
}

TEST_CASE("draining keeps joining queued requests and shuts down after the last one") {
  Fixture f;
  auto a = f.queued(1);
  f.queue.drain();
  PlanDraft d = f.plan();
  CHECK(d.plan.command == PlanCommand::step);
  CHECK(d.plan.joins.size() == 1);
  f.running.leave(*a);
  d = f.plan();
  CHECK(d.plan.command == PlanCommand::shutdown);
  CHECK(d.plan.leaves == std::vector<uint64_t>{1});
}

TEST_CASE("a running request past its deadline leaves with a timeout") {
  Fixture f;
  auto a = f.queued(1);
  a->deadline = Clock::now() - std::chrono::seconds(1);
  f.queued(2);
  // Queued past its deadline: ends before joining.
  PlanDraft d = f.plan();
  REQUIRE(d.ended.size() == 1);
  CHECK(d.ended[0].event.error_code == ErrorCode::timeout);
  REQUIRE(d.plan.joins.size() == 1);
  auto b = f.running.copy(0)[0];
  b->deadline = Clock::now() - std::chrono::seconds(1);
  d = f.plan();
  CHECK(d.plan.leaves == std::vector<uint64_t>{2});
  REQUIRE(d.ended.size() == 1);
  CHECK(d.ended[0].request == b);
  CHECK_FALSE(d.plan.run);
}
