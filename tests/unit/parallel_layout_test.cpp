#include "runtime/dist/parallel_layout.h"

#include <doctest/doctest.h>

#include <array>
#include <set>

using namespace rankserve::runtime;

TEST_CASE("tensor-parallel groups are consecutive ranks and pipeline stages are dp*tp apart") {
  ParallelLayout layout{8, 2, 2};  // dp = 2
  CHECK(layout.dp_size() == 2);
  CHECK(layout.groups(GroupKind::tp) == std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  CHECK(layout.groups(GroupKind::pp) == std::vector<std::vector<int>>{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(layout.groups(GroupKind::dp) == std::vector<std::vector<int>>{{0, 2}, {1, 3}, {4, 6}, {5, 7}});
  CHECK(layout.group_of(GroupKind::tp, 5) == std::vector<int>{4, 5});
  CHECK(layout.tp_rank(5) == 1);
  CHECK(layout.dp_rank(5) == 0);
  CHECK(layout.pp_rank(5) == 1);
}

TEST_CASE("every kind of group partitions the world") {
  const std::vector<std::array<int, 3>> layouts{{4, 1, 1}, {4, 2, 1}, {4, 4, 1}, {4, 1, 2}, {12, 2, 3}};
  for (auto [world, tp, pp] : layouts) {
    ParallelLayout layout{world, tp, pp};
    for (GroupKind kind : {GroupKind::world, GroupKind::tp, GroupKind::pp, GroupKind::dp}) {
      std::multiset<int> seen;
      for (auto& g : layout.groups(kind)) seen.insert(g.begin(), g.end());
      CHECK(seen.size() == static_cast<size_t>(world));
      CHECK(std::set<int>(seen.begin(), seen.end()).size() == static_cast<size_t>(world));
    }
    CHECK(layout.groups(GroupKind::tp).front().size() == static_cast<size_t>(tp));
    CHECK(layout.groups(GroupKind::pp).front().size() == static_cast<size_t>(pp));
  }
}
