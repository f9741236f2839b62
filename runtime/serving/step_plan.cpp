#include "runtime/serving/step_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/error.h"

namespace rankserve::runtime {
namespace {

static_assert(std::is_trivially_copyable_v<SamplingParams>);
// The gathered bytes are the structs themselves: no padding, the same layout on every rank.
static_assert(std::is_trivially_copyable_v<SlotChoice> && sizeof(SlotChoice) == sizeof(int32_t) + sizeof(float));

class Writer {
 public:
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_vector(const std::vector<T>& values) {
    put(static_cast<uint64_t>(values.size()));
    for (const T& v : values) put(v);
  }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    if (offset_ + sizeof(T) > bytes_.size()) {
      throw Error(ErrorCode::runtime,
                  fmt::format("step plan: truncated at byte {} of {} (ranks out of step)", offset_, bytes_.size()));
    }
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const auto n = get<uint64_t>();
    if (n > bytes_.size())
      throw Error(ErrorCode::runtime, fmt::format("step plan: a list of {} items in {} bytes", n, bytes_.size()));
    std::vector<T> values(n);
    for (T& v : values) v = get<T>();
    return values;
  }
  bool done() const { return offset_ == bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
  size_t offset_ = 0;
};

}  // namespace

namespace {

// The bytes of `plan` with only the joins `keep` accepts.
template <typename Keep>
std::vector<std::byte> encode_plan_if(const StepPlan& plan, Keep keep) {
  Writer w;
  w.put(plan.command);
  w.put(plan.run);
  w.put(plan.prompt_token_budget);
  w.put(plan.gather_slots);
  w.put_vector(plan.leaves);
  w.put(static_cast<uint64_t>(std::count_if(plan.joins.begin(), plan.joins.end(), keep)));
  for (const PlanJoin& j : plan.joins) {
    if (!keep(j)) continue;
    w.put(j.dp_rank);
    w.put(j.sequence.id);
    w.put(static_cast<int32_t>(j.sequence.max_tokens));
    w.put(j.sequence.sampling);
    w.put_vector(j.sequence.prompt);
  }
  return w.take();
}

// encode_plan(plan_for_copy(plan, dp_rank)), without copying the copy's prompts into a second plan.
std::vector<std::byte> encode_plan_for_copy(const StepPlan& plan, int dp_rank) {
  return encode_plan_if(plan, [dp_rank](const PlanJoin& j) { return j.dp_rank == dp_rank; });
}

}  // namespace

std::vector<std::byte> encode_plan(const StepPlan& plan) {
  return encode_plan_if(plan, [](const PlanJoin&) { return true; });
}

StepPlan decode_plan(std::span<const std::byte> bytes) {
  Reader r(bytes);
  StepPlan plan;
  plan.command = r.get<PlanCommand>();
  if (plan.command != PlanCommand::step && plan.command != PlanCommand::shutdown) {
    throw Error(ErrorCode::runtime, "step plan: unknown command (ranks out of step)");
  }
  plan.run = r.get<bool>();
  plan.prompt_token_budget = r.get<int32_t>();
  plan.gather_slots = r.get<int32_t>();
  plan.leaves = r.get_vector<uint64_t>();
  const auto num_joins = r.get<uint64_t>();
  for (uint64_t i = 0; i < num_joins && i <= bytes.size(); ++i) {
    PlanJoin j;
    j.dp_rank = r.get<int32_t>();
    j.sequence.id = r.get<uint64_t>();
    j.sequence.max_tokens = r.get<int32_t>();
    j.sequence.sampling = r.get<SamplingParams>();
    j.sequence.prompt = r.get_vector<int32_t>();
    plan.joins.push_back(std::move(j));
  }
  if (!r.done()) throw Error(ErrorCode::runtime, "step plan: trailing bytes (ranks out of step)");
  return plan;
}

StepPlan plan_for_copy(const StepPlan& plan, int dp_rank) {
  StepPlan part{plan.command, plan.run, plan.prompt_token_budget, plan.gather_slots, plan.leaves, {}};
  for (const PlanJoin& j : plan.joins) {
    if (j.dp_rank == dp_rank) part.joins.push_back(j);
  }
  return part;
}

namespace {

// Far above any plan (max_batch_size joins of max_context tokens are a few MB): a larger size is a
// rank out of step, refused before allocating.
constexpr uint64_t kMaxPlanBytes = uint64_t{1} << 30;

Buffer host_bytes(std::span<const std::byte> bytes) {
  return Buffer{const_cast<std::byte*>(bytes.data()), bytes.size(), ElementType::byte, false};
}

void check_size(uint64_t size, const Communicator& group) {
  if (size == 0 || size > kMaxPlanBytes) {
    throw Error(ErrorCode::runtime, fmt::format("step plan: a plan of {} bytes on {} (ranks out of step)", size, group.name()));
  }
}

// A plan travels as its size, then its bytes.
void send_plan_bytes(Communicator& group, std::span<const std::byte> bytes, int peer) {
  uint64_t size = bytes.size();
  group.send(host_bytes(std::as_bytes(std::span(&size, 1))), peer);
  group.send(host_bytes(bytes), peer);
}

std::vector<std::byte> receive_plan_bytes(Communicator& group, int peer) {
  uint64_t size = 0;
  group.recv(host_bytes(std::as_bytes(std::span(&size, 1))), peer);
  check_size(size, group);
  std::vector<std::byte> bytes(size);
  group.recv(host_bytes(bytes), peer);
  return bytes;
}

// Group rank 0's `bytes` to every member of `group`.
void broadcast_plan_bytes(Communicator& group, std::vector<std::byte>& bytes) {
  if (group.size() == 1) return;
  uint64_t size = bytes.size();
  group.broadcast(std::as_writable_bytes(std::span(&size, 1)), 0);
  if (group.rank() != 0) {
    check_size(size, group);
    bytes.resize(size);
  }
  group.broadcast(bytes, 0);
}

}  // namespace

void distribute_plan(const ProcessGroups& groups, StepPlan& plan) {
  const bool head = groups.world->rank() == 0;
  const bool first_stage = groups.pp->rank() == 0;
  const bool copy_leader = first_stage && groups.tp->rank() == 0;
  Communicator& dp = *groups.dp;
  std::vector<std::byte> bytes;
  if (head) {
    RANKSERVE_CHECK(copy_leader && dp.rank() == 0, "global rank 0 leads copy 0");
    for (int d = 1; d < dp.size(); ++d) send_plan_bytes(dp, encode_plan_for_copy(plan, d), d);
    if (groups.tp->size() > 1 || groups.pp->size() > 1) bytes = encode_plan_for_copy(plan, 0);
  } else if (copy_leader) {
    bytes = receive_plan_bytes(dp, 0);
  }
  if (first_stage) broadcast_plan_bytes(*groups.tp, bytes);
  broadcast_plan_bytes(*groups.pp, bytes);
  if (head) return;
  plan = decode_plan(bytes);
  for (const PlanJoin& j : plan.joins) {
    RANKSERVE_CHECK(j.dp_rank == dp.rank(), fmt::format("copy {} received a join of copy {}", dp.rank(), j.dp_rank));
  }
}

StepResults gather_choices(std::span<const TokenChoice> mine, int32_t slots, Communicator& dp) {
  RANKSERVE_CHECK(mine.size() <= static_cast<size_t>(slots), fmt::format("{} choices for {} slots", mine.size(), slots));
  std::vector<SlotChoice> local(static_cast<size_t>(slots));
  for (size_t i = 0; i < mine.size(); ++i) local[i] = {mine[i].token, mine[i].logprob};
  StepResults results;
  results.slots = slots;
  results.choices.resize(local.size() * static_cast<size_t>(dp.size()));
  dp.all_gather(host_bytes(std::as_bytes(std::span(local))),
                Buffer{results.choices.data(), results.choices.size() * sizeof(SlotChoice), ElementType::byte, false});
  return results;
}

StepResults execute_plan(StepPlan plan, Engine& engine, const ProcessGroups& groups) {
  if (plan.command == PlanCommand::shutdown) return {};
  const int dp_rank = groups.dp->rank();
  for (uint64_t id : plan.leaves) engine.remove_sequence(id);
  for (PlanJoin& j : plan.joins) {
    if (j.dp_rank == dp_rank) engine.add_sequence(std::move(j.sequence));
  }
  if (!plan.run) return {};
  RANKSERVE_CHECK(engine.num_sequences() <= static_cast<size_t>(plan.gather_slots),
                  fmt::format("{} sequences in a copy of {} slots", engine.num_sequences(), plan.gather_slots));
  return gather_choices(engine.step(plan.prompt_token_budget), plan.gather_slots, *groups.dp);
}

}  // namespace rankserve::runtime
