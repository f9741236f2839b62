#include "runtime/serving/scheduler.h"

#include <doctest/doctest.h>

#include "core/error.h"
#include "tests/support/serving_fixtures.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::bytes_tokenizer;
using rankserve::testing::RecordingSink;

// The facade without an engine: what it answers before run() and after drain/fail_all. The step loop
// itself (run) needs every rank and is covered by the dist tier's serving cases.

namespace {

SchedulerOptions options() {
  SchedulerOptions o;
  o.model.max_context = 16;
  o.model.max_batch_size = 2;
  o.num_copies = 2;
  o.max_queue_size = 3;
  return o;
}

ErrorCode code_of_submit(Scheduler& scheduler, const std::string& prompt) {
  try {
    scheduler.submit(TextRequest{prompt, {}, Clock::time_point::max()}, std::make_shared<RecordingSink>());
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("submit did not throw");
  return ErrorCode::runtime;
}

}  // namespace

TEST_CASE("before the loop runs the scheduler is not ready (loading) and refuses requests as unavailable") {
  Scheduler scheduler(options(), bytes_tokenizer());
  scheduler.set_health_probe([] { return std::string("rank 1 silent"); });
  const ServiceStatus s = scheduler.status();
  CHECK_FALSE(s.ready);
  CHECK(s.not_ready_reason == "loading");
  CHECK(s.max_queue_size == 3);
  CHECK(s.queue_size == 0);
  CHECK(s.running == 0);
  CHECK(code_of_submit(scheduler, "hello") == ErrorCode::unavailable);
  // A request the model cannot take is a bad request whatever the lifecycle.
  CHECK(code_of_submit(scheduler, "0123456789abcdefgh") == ErrorCode::bad_request);
  CHECK(scheduler.count_tokens("hello") == 5);
}

TEST_CASE("drain and fail_all show in the status and refuse new requests") {
  Scheduler scheduler(options(), bytes_tokenizer());
  scheduler.drain();
  CHECK(scheduler.status().draining);
  CHECK(scheduler.status().not_ready_reason == "draining");
  scheduler.fail_all("rank 2 (host n3) died");
  CHECK(scheduler.status().not_ready_reason == "rank 2 (host n3) died");
  try {
    scheduler.submit(TextRequest{"hi", {}, Clock::time_point::max()}, std::make_shared<RecordingSink>());
    FAIL("submit did not throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::unavailable);
    CHECK(std::string(e.what()) == "server: cannot serve: rank 2 (host n3) died");
  }
}

TEST_CASE("the heartbeat ages reach the status") {
  Scheduler scheduler(options(), bytes_tokenizer());
  scheduler.set_heartbeat_ages([] { return std::vector<double>{0.1, 0.4}; });
  CHECK(scheduler.status().heartbeat_age_s == std::vector<double>{0.1, 0.4});
}
