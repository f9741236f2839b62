#include "runtime/dist/communicator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace rankserve::runtime {

size_t Buffer::bytes() const {
  switch (type) {
    case ElementType::float32: return count * 4;
    case ElementType::bfloat16:
    case ElementType::float16: return count * 2;
    case ElementType::byte: return count;
  }
  return count;
}

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
  void all_reduce_sum(const Buffer&) override {}
  void all_gather(const Buffer& input, const Buffer& output) override {
    RANKSERVE_CHECK(output.bytes() == input.bytes(), "all_gather output size");
    if (input.data == output.data) return;
    // A group of one needs no device copy in the model (it skips its collectives); refuse rather than guess.
    RANKSERVE_CHECK(!input.on_device && !output.on_device, "a group of one gathers host buffers only");
    std::memcpy(output.data, input.data, input.bytes());
  }
  void broadcast(const Buffer&, int) override {}
  void send(const Buffer&, int) override { RANKSERVE_CHECK(false, "a group of one has no peer to send to"); }
  void recv(const Buffer&, int) override { RANKSERVE_CHECK(false, "a group of one has no peer to receive from"); }
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
                       make_self_communicator("pp[0]", 0), make_self_communicator("dp[0]", 0), "cpu"};
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
