#include "runtime/dist/communicator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "runtime/core/error.h"

namespace rankserve::runtime {

Communicator& ProcessGroups::get(GroupKind kind) const {
  switch (kind) {
    case GroupKind::world: return *world;
    case GroupKind::tp: return *tp;
    case GroupKind::pp: return *pp;
    case GroupKind::dp: return *dp;
  }
  return *world;
}

void check_groups(const ProcessGroups& groups, int global_rank) {
  for (GroupKind kind : {GroupKind::world, GroupKind::tp, GroupKind::pp, GroupKind::dp}) {
    Communicator& c = groups.get(kind);
    // Several elements so a ring algorithm really splits the buffer.
    std::vector<float> data(1024, static_cast<float>(global_rank + 1));
    c.all_reduce_sum(data);
    float expected = 0;
    for (int member : c.members()) expected += static_cast<float>(member + 1);
    for (size_t i = 0; i < data.size(); ++i) {
      if (data[i] != expected) {
        throw Error(ErrorCode::runtime,
                    fmt::format("collectives: all-reduce check on {} (ranks {}) gave {} at element {}; expected {}",
                                c.name(), c.members(), data[i], i, expected));
      }
    }
  }
}

}  // namespace rankserve::runtime
