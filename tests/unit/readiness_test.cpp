#include "runtime/serving/readiness.h"

#include <doctest/doctest.h>

using namespace rankserve;
using namespace rankserve::runtime;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kStallAfter{30000};

AdmissionQueue serving_queue() {
  AdmissionQueue queue(4);
  queue.set_serving(true);
  return queue;
}

}  // namespace

TEST_CASE("a serving service with a healthy probe and no long step is ready") {
  const Clock::time_point t0{};
  StallWatch stall;
  stall.restart(t0);
  CHECK(not_ready_reason(serving_queue(), "", stall, t0 + std::chrono::hours(1), kStallAfter).empty());
}

TEST_CASE("a step running longer than stall_after makes the service not ready until its results come") {
  const Clock::time_point t0{};
  StallWatch stall;
  stall.restart(t0, true);
  CHECK(stall.stall_reason(t0 + kStallAfter, kStallAfter).empty());
  CHECK(stall.stall_reason(t0 + milliseconds(31500), kStallAfter) == "the engine has not finished a step for 31.5 s");
  stall.step_done(t0 + milliseconds(40000));
  CHECK(stall.stall_reason(t0 + milliseconds(90000), kStallAfter).empty());  // idle is not stalled
}

TEST_CASE("the lifecycle's reason comes first, then the probe, then a stalled step") {
  const Clock::time_point t0{};
  StallWatch stall;
  stall.restart(t0, true);
  const Clock::time_point late = t0 + std::chrono::minutes(1);
  AdmissionQueue queue = serving_queue();
  CHECK(not_ready_reason(queue, "", stall, late, kStallAfter).rfind("the engine has not finished a step", 0) == 0);
  CHECK(not_ready_reason(queue, "rank 1 (host n2) sent no heartbeat for 6.0 s", stall, late, kStallAfter) ==
        "rank 1 (host n2) sent no heartbeat for 6.0 s");
  queue.drain();
  CHECK(not_ready_reason(queue, "rank 1 silent", stall, late, kStallAfter) == "draining");
  queue.fail("rank 3 died");
  CHECK(not_ready_reason(queue, "rank 1 silent", stall, late, kStallAfter) == "rank 3 died");
  CHECK(not_ready_reason(AdmissionQueue(4), "", stall, late, kStallAfter) == "loading");
}
