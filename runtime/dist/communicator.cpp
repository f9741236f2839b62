#include "runtime/dist/communicator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
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

namespace {

class SelfCommunicator final : public Communicator {
 public:
  SelfCommunicator(std::string name, int global_rank) : name_(std::move(name)), members_{global_rank} {}
  std::string_view name() const override { return name_; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::vector<int>& members() const override { return members_; }
  void all_reduce_sum(std::span<float>) override {}
  void all_gather(std::span<const float> input, std::span<float> output) override {
    std::copy(input.begin(), input.end(), output.begin());
  }
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}

 private:
  std::string name_;
  std::vector<int> members_;
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator(std::string name, int global_rank) {
  return std::make_unique<SelfCommunicator>(std::move(name), global_rank);
}

ProcessGroups make_self_groups() {
  return ProcessGroups{make_self_communicator("world[0]", 0), make_self_communicator("tp[0]", 0),
                       make_self_communicator("pp[0]", 0), make_self_communicator("dp[0]", 0)};
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
                    fmt::format("collectives: all-reduce check on {} (ranks {}) gave {} at element {}; expected {}", c.name(),
                                c.members(), data[i], i, expected));
      }
    }
  }
}

}  // namespace rankserve::runtime
