#include "runtime/serving/step_plan.h"

#include <fmt/format.h>

#include <cstring>
#include <type_traits>

#include "core/error.h"

namespace rankserve::runtime {
namespace {

static_assert(std::is_trivially_copyable_v<SamplingParams>);

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

std::vector<std::byte> encode_plan(const StepPlan& plan) {
  Writer w;
  w.put(plan.command);
  w.put(plan.run);
  w.put(plan.prompt_token_budget);
  w.put(plan.gather_slots);
  w.put_vector(plan.leaves);
  w.put(static_cast<uint64_t>(plan.joins.size()));
  for (const PlanJoin& j : plan.joins) {
    w.put(j.dp_rank);
    w.put(j.sequence.id);
    w.put(static_cast<int32_t>(j.sequence.max_new_tokens));
    w.put(j.sequence.sampling);
    w.put_vector(j.sequence.prompt);
  }
  return w.take();
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
    j.sequence.max_new_tokens = r.get<int32_t>();
    j.sequence.sampling = r.get<SamplingParams>();
    j.sequence.prompt = r.get_vector<int32_t>();
    plan.joins.push_back(std::move(j));
  }
  if (!r.done()) throw Error(ErrorCode::runtime, "step plan: trailing bytes (ranks out of step)");
  return plan;
}

void broadcast_plan(Communicator& world, StepPlan& plan) {
  std::vector<std::byte> bytes;
  uint64_t size = 0;
  if (world.rank() == 0) {
    bytes = encode_plan(plan);
    size = bytes.size();
  }
  world.broadcast(std::as_writable_bytes(std::span(&size, 1)), 0);
  if (world.rank() != 0) bytes.resize(size);
  world.broadcast(bytes, 0);
  if (world.rank() != 0) plan = decode_plan(bytes);
}

StepResults execute_plan(const StepPlan& plan, Engine& engine, const ProcessGroups& groups) {
  StepResults results;
  if (plan.command == PlanCommand::shutdown) return results;
  const int dp_rank = groups.dp->rank();
  for (uint64_t id : plan.leaves) engine.remove_sequence(id);
  for (const PlanJoin& j : plan.joins) {
    if (j.dp_rank == dp_rank) engine.add_sequence(j.sequence);
  }
  if (!plan.run) return results;
  RANKSERVE_CHECK(engine.num_sequences() <= static_cast<size_t>(plan.gather_slots),
                  fmt::format("{} sequences in a copy of {} slots", engine.num_sequences(), plan.gather_slots));
  const std::vector<TokenChoice> choices = engine.step(plan.prompt_token_budget);
  std::vector<float> mine(2 * static_cast<size_t>(plan.gather_slots), -1.0f);
  for (size_t i = 0; i < choices.size(); ++i) {
    mine[2 * i] = static_cast<float>(choices[i].token);  // exact: vocabularies are far below 2^24
    mine[2 * i + 1] = choices[i].logprob;
  }
  results.slots = plan.gather_slots;
  results.values.resize(mine.size() * static_cast<size_t>(groups.dp->size()));
  groups.dp->all_gather(mine, results.values);
  return results;
}

}  // namespace rankserve::runtime
