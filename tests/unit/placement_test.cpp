#include "runtime/serving/placement.h"

#include <doctest/doctest.h>

#include "tests/support/serving_fixtures.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::serving_request;

TEST_CASE("a request joins the copy running the fewest sequences, the lowest dp_rank on a tie") {
  const PlacementLimits limits{4, 0};
  CHECK(choose_copy(std::vector<CopyLoad>{{2, 0}, {1, 0}, {1, 0}}, 10, limits) == 1);
  CHECK(choose_copy(std::vector<CopyLoad>{{0, 0}, {0, 0}}, 10, limits) == 0);
  CHECK(choose_copy(std::vector<CopyLoad>{{3, 0}, {3, 0}, {0, 0}}, 10, limits) == 2);
}

TEST_CASE("a copy with every slot taken takes no request, and none free gives -1") {
  const PlacementLimits limits{2, 0};
  CHECK(choose_copy(std::vector<CopyLoad>{{2, 0}, {1, 0}}, 10, limits) == 1);
  CHECK(choose_copy(std::vector<CopyLoad>{{2, 0}, {2, 0}}, 10, limits) == -1);
}

TEST_CASE("a request joins only a copy whose KV budget still fits it") {
  const PlacementLimits limits{8, 100};
  // Copy 0 runs fewer sequences but has 30 tokens left; copy 1 has 60.
  const std::vector<CopyLoad> loads{{1, 70}, {2, 40}};
  CHECK(choose_copy(loads, 30, limits) == 0);  // exactly fits
  CHECK(choose_copy(loads, 31, limits) == 1);
  CHECK(choose_copy(loads, 61, limits) == -1);
  CHECK(choose_copy(loads, 61, PlacementLimits{8, 0}) == 0);  // 0: no limit
}

TEST_CASE("a request larger than the KV budget runs alone on an idle copy") {
  const PlacementLimits limits{8, 100};
  CHECK(choose_copy(std::vector<CopyLoad>{{1, 10}, {0, 0}}, 500, limits) == 1);
  CHECK(choose_copy(std::vector<CopyLoad>{{1, 10}, {1, 10}}, 500, limits) == -1);
}

TEST_CASE("the running set keeps join order per copy and the KV tokens its sequences hold") {
  RunningSet running(2);
  auto a = serving_request(1, 3, 5), b = serving_request(2, 4, 4), c = serving_request(3, 1, 1);
  running.join(1, a);
  running.join(1, b);
  running.join(0, c);
  CHECK(a->copy == 1);
  CHECK(running.num_running() == 3);
  CHECK(running.kv_tokens() == 8 + 8 + 2);
  REQUIRE(running.copy(1).size() == 2);
  CHECK(running.copy(1)[0] == a);
  CHECK(running.copy(1)[1] == b);
  const std::vector<CopyLoad> loads = running.loads();
  CHECK(loads[0].num_running == 1);
  CHECK(loads[0].kv_tokens == 2);
  CHECK(loads[1].num_running == 2);
  CHECK(loads[1].kv_tokens == 16);
  const auto all = running.all();
  REQUIRE(all.size() == 3);
  CHECK(all[0] == c);  // copy 0 first
  CHECK(all[1] == a);
}

TEST_CASE("a leave frees the slot and KV tokens and is pending until taken, once") {
  RunningSet running(2);
  auto a = serving_request(1, 3, 5), b = serving_request(2, 4, 4);
  running.join(0, a);
  running.join(0, b);
  running.leave(*a);
  running.leave(*a);  // no longer running: nothing
  CHECK(running.copy(0).size() == 1);
  CHECK(running.copy(0)[0] == b);
  CHECK(running.kv_tokens() == 8);
  CHECK(running.has_pending_leaves());
  CHECK(running.take_leaves() == std::vector<uint64_t>{1});
  CHECK_FALSE(running.has_pending_leaves());
  CHECK(running.take_leaves().empty());
  running.leave(*serving_request(7, 1, 1));  // never joined
  CHECK_FALSE(running.has_pending_leaves());
  running.leave(*b);
  CHECK_FALSE(running.any_running());
  CHECK(running.kv_tokens() == 0);
}
