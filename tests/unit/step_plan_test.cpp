#include "runtime/serving/step_plan.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "tests/support/local_job.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::LocalJob;

TEST_CASE("a step plan survives encoding and decoding") {
  StepPlan plan;
  plan.run = true;
  plan.prompt_token_budget = 512;
  plan.gather_slots = 128;
  plan.leaves = {3, 9};
  SamplingParams sampling{false, 0.7f, 40, 0.9f, 1.1f, 5, 1234};
  plan.joins.push_back({1, SequenceSpec{42, {50256, 464, 3290}, 30, sampling}});
  plan.joins.push_back({0, SequenceSpec{43, {2}, 1, SamplingParams{}}});
  const StepPlan back = decode_plan(encode_plan(plan));
  CHECK(back.command == PlanCommand::step);
  CHECK(back.run);
  CHECK(back.prompt_token_budget == 512);
  CHECK(back.gather_slots == 128);
  CHECK(back.leaves == plan.leaves);
  REQUIRE(back.joins.size() == 2);
  CHECK(back.joins[0].dp_rank == 1);
  CHECK(back.joins[0].sequence.id == 42);
  CHECK(back.joins[0].sequence.prompt == std::vector<int32_t>{50256, 464, 3290});
  CHECK(back.joins[0].sequence.max_tokens == 30);
  CHECK(back.joins[0].sequence.sampling.temperature == doctest::Approx(0.7f));
  CHECK(back.joins[0].sequence.sampling.top_k == 40);
  CHECK(back.joins[0].sequence.sampling.seed == 1234);
  CHECK_FALSE(back.joins[0].sequence.sampling.greedy);
  CHECK(back.joins[1].sequence.prompt == std::vector<int32_t>{2});
}

TEST_CASE("a shutdown plan decodes as shutdown") {
  StepPlan plan;
  plan.command = PlanCommand::shutdown;
  CHECK(decode_plan(encode_plan(plan)).command == PlanCommand::shutdown);
}

TEST_CASE("a truncated or padded plan is refused, not misread") {
  StepPlan plan;
  plan.joins.push_back({0, SequenceSpec{1, {1, 2, 3}, 4, SamplingParams{}}});
  std::vector<std::byte> bytes = encode_plan(plan);
  std::vector<std::byte> cut(bytes.begin(), bytes.end() - 3);
  CHECK_THROWS_AS(decode_plan(cut), Error);
  bytes.push_back(std::byte{0});
  CHECK_THROWS_AS(decode_plan(bytes), Error);
  std::vector<std::byte> garbage(40, std::byte{0xff});
  CHECK_THROWS_AS(decode_plan(garbage), Error);
}

TEST_CASE("a copy's part of a plan has every field but the joins, and only that copy's joins in plan order") {
  StepPlan plan;
  plan.run = true;
  plan.prompt_token_budget = 64;
  plan.gather_slots = 8;
  plan.leaves = {5, 6};
  plan.joins.push_back({1, SequenceSpec{10, {1}, 2, SamplingParams{}}});
  plan.joins.push_back({0, SequenceSpec{11, {2}, 2, SamplingParams{}}});
  plan.joins.push_back({1, SequenceSpec{12, {3}, 2, SamplingParams{}}});
  const StepPlan part = plan_for_copy(plan, 1);
  CHECK(part.command == PlanCommand::step);
  CHECK(part.run);
  CHECK(part.prompt_token_budget == 64);
  CHECK(part.gather_slots == 8);
  CHECK(part.leaves == plan.leaves);
  REQUIRE(part.joins.size() == 2);
  CHECK(part.joins[0].sequence.id == 10);
  CHECK(part.joins[1].sequence.id == 12);
  CHECK(plan_for_copy(plan, 2).joins.empty());
}

namespace {

// Passes every call to a real group and keeps the bytes that reached this rank (received,
// broadcast from another member, gathered), so a test can tell what travelled to whom.
class RecordingCommunicator final : public Communicator {
 public:
  RecordingCommunicator(Communicator& inner, std::vector<std::byte>& arrived) : inner_(inner), arrived_(arrived) {}
  std::string_view name() const override { return inner_.name(); }
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  const std::vector<int>& members() const override { return inner_.members(); }
  void all_reduce_sum(const Buffer& data) override { inner_.all_reduce_sum(data); }
  void all_gather(const Buffer& input, const Buffer& output) override {
    inner_.all_gather(input, output);
    keep(output);
  }
  void broadcast(const Buffer& data, int root) override {
    inner_.broadcast(data, root);
    if (rank() != root) keep(data);
  }
  void send(const Buffer& data, int peer) override { inner_.send(data, peer); }
  void recv(const Buffer& data, int peer) override {
    inner_.recv(data, peer);
    keep(data);
  }
  void barrier() override { inner_.barrier(); }

 private:
  void keep(const Buffer& data) {
    const auto* p = static_cast<const std::byte*>(data.data);
    arrived_.insert(arrived_.end(), p, p + data.bytes());
  }
  Communicator& inner_;
  std::vector<std::byte>& arrived_;
};

ProcessGroups recording(const ProcessGroups& groups, std::vector<std::byte>& arrived) {
  return ProcessGroups{std::make_unique<RecordingCommunicator>(*groups.world, arrived),
                       std::make_unique<RecordingCommunicator>(*groups.tp, arrived),
                       std::make_unique<RecordingCommunicator>(*groups.pp, arrived),
                       std::make_unique<RecordingCommunicator>(*groups.dp, arrived), groups.device};
}

// A prompt no other copy's join holds, so its bytes show where that copy's joins went.
std::vector<int32_t> marker_prompt(int dp_rank) { return {900000 + 10 * dp_rank, 900001 + 10 * dp_rank, 900002 + 10 * dp_rank}; }

bool holds(const std::vector<std::byte>& bytes, const std::vector<int32_t>& ids) {
  const auto pattern = std::as_bytes(std::span(ids));
  return std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end()) != bytes.end();
}

// Every rank of `layout` distributes a plan with joins for each copy (copy d: d + 1 of them), then a
// shutdown plan; checks what each rank decoded and that no other copy's join reached it.
void check_distribution(const ParallelLayout& layout) {
  const int num_copies = layout.dp_size();
  StepPlan plan;
  plan.run = true;
  plan.prompt_token_budget = 100;
  plan.gather_slots = 4;
  plan.leaves = {77, 78};
  uint64_t next_id = 1;
  for (int round = 0; round < num_copies; ++round) {
    for (int d = round; d < num_copies; ++d)
      plan.joins.push_back({d, SequenceSpec{next_id++, marker_prompt(d), 3, SamplingParams{}}});
  }
  LocalJob job(layout);
  std::vector<std::vector<std::byte>> arrived(static_cast<size_t>(job.world_size()));
  std::vector<ProcessGroups> groups;
  for (int r = 0; r < job.world_size(); ++r) groups.push_back(recording(job.groups(r), arrived[static_cast<size_t>(r)]));
  std::vector<StepPlan> got(static_cast<size_t>(job.world_size()));
  std::vector<PlanCommand> then(static_cast<size_t>(job.world_size()), PlanCommand::step);
  job.run_on_every_rank([&](int r) {
    StepPlan mine;
    if (r == 0) mine = plan;
    distribute_plan(groups[static_cast<size_t>(r)], mine);
    got[static_cast<size_t>(r)] = mine;
    StepPlan last;
    last.command = r == 0 ? PlanCommand::shutdown : PlanCommand::step;
    distribute_plan(groups[static_cast<size_t>(r)], last);
    then[static_cast<size_t>(r)] = last.command;
  });
  CHECK(got[0].joins.size() == plan.joins.size());  // rank 0 keeps the whole plan
  for (int r = 0; r < job.world_size(); ++r) {
    CAPTURE(r);
    const int copy = layout.dp_rank(r);
    const StepPlan& p = got[static_cast<size_t>(r)];
    CHECK(then[static_cast<size_t>(r)] == PlanCommand::shutdown);
    CHECK(p.run);
    CHECK(p.prompt_token_budget == 100);
    CHECK(p.gather_slots == 4);
    CHECK(p.leaves == plan.leaves);
    if (r == 0) continue;
    const StepPlan expected = plan_for_copy(plan, copy);
    REQUIRE(p.joins.size() == expected.joins.size());
    for (size_t j = 0; j < p.joins.size(); ++j) {
      CHECK(p.joins[j].dp_rank == copy);
      CHECK(p.joins[j].sequence.id == expected.joins[j].sequence.id);
      CHECK(p.joins[j].sequence.prompt == marker_prompt(copy));
    }
    const std::vector<std::byte>& bytes = arrived[static_cast<size_t>(r)];
    CHECK(holds(bytes, marker_prompt(copy)));
    for (int other = 0; other < num_copies; ++other) {
      if (other != copy) CHECK_MESSAGE(!holds(bytes, marker_prompt(other)), "copy " << other << "'s join reached it");
    }
  }
}

}  // namespace

TEST_CASE("each data-parallel copy's ranks receive the plan's common part and only their own copy's joins (TP 2 x PP 2 x DP 2)") {
  check_distribution(ParallelLayout{8, 2, 2});
}

TEST_CASE("each of three data-parallel copies of one rank receives only its own joins") {
  check_distribution(ParallelLayout{3, 1, 1});
}

TEST_CASE("gathered choices keep every token id exact, including ids a float cannot hold, and each copy's log-probabilities") {
  LocalJob job(ParallelLayout{3, 1, 1});  // three copies of one rank: the DP group is the world
  constexpr int32_t kSlots = 3;
  constexpr int32_t kBeyondFloat = (1 << 24) + 1;  // 16777217: a float would round it to 16777216
  std::vector<StepResults> results(3);
  job.run_on_every_rank([&](int r) {
    std::vector<TokenChoice> mine;                                                                // copy r runs r sequences
    if (r >= 1) mine.push_back({1, kBeyondFloat + 2 * (r - 1), -0.25f * static_cast<float>(r)});  // odd ids
    if (r >= 2) mine.push_back({2, kSamplingFailed, 0});
    results[static_cast<size_t>(r)] = gather_choices(mine, kSlots, *job.groups(r).dp);
  });
  for (const StepResults& got : results) {
    REQUIRE(got.slots == kSlots);
    REQUIRE(got.choices.size() == 3 * kSlots);
    CHECK(got.token(0, 0) == kNoToken);
    CHECK(got.token(1, 0) == kBeyondFloat);
    CHECK(got.logprob(1, 0) == -0.25f);
    CHECK(got.token(1, 1) == kNoToken);
    CHECK(got.token(2, 0) == kBeyondFloat + 2);
    CHECK(got.logprob(2, 0) == -0.5f);
    CHECK(got.token(2, 1) == kSamplingFailed);
    CHECK(got.token(2, 2) == kNoToken);
  }
}
