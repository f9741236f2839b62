// The step plan: what every rank does in one iteration of the serving loop. Global rank 0 builds it
// (runtime/serving/scheduler.h) and broadcasts it; every rank applies it to its engine in the same
// order, so the ranks can never disagree about which sequences run. Engine thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/engine.h"

namespace rankserve::runtime {

enum class PlanCommand : uint8_t {
  step,      // apply leaves and joins, then run one step if `run`
  shutdown,  // apply nothing; every rank leaves its loop at this plan
};

struct PlanJoin {
  int32_t dp_rank = 0;  // the model copy that runs it
  SequenceSpec sequence;
};

struct StepPlan {
  PlanCommand command = PlanCommand::step;
  bool run = false;                 // some copy has sequences after the joins: every rank steps and gathers
  int32_t prompt_token_budget = 0;  // Engine::step's budget
  int32_t gather_slots = 0;         // sequences per copy at most (the results buffer, see execute_plan)
  std::vector<uint64_t> leaves;     // sequence ids to remove, from any copy
  std::vector<PlanJoin> joins;
};

std::vector<std::byte> encode_plan(const StepPlan& plan);
// Throws Error(runtime) on a malformed buffer (a rank out of step).
StepPlan decode_plan(std::span<const std::byte> bytes);

// Global rank 0 sends `plan`, every other rank receives into it. Collective over `world`.
void broadcast_plan(Communicator& world, StepPlan& plan);

// The choices of every copy after a step: [dp_rank][slot] in each copy's join order; token -1 when
// the slot is empty or its sequence is still reading its prompt.
struct StepResults {
  int32_t slots = 0;
  std::vector<float> values;  // dp_size x slots x (token, logprob)
  int32_t token(int dp_rank, int slot) const { return static_cast<int32_t>(values[index(dp_rank, slot)]); }
  float logprob(int dp_rank, int slot) const { return values[index(dp_rank, slot) + 1]; }

 private:
  size_t index(int dp_rank, int slot) const {
    return 2 * (static_cast<size_t>(dp_rank) * static_cast<size_t>(slots) + static_cast<size_t>(slot));
  }
};

// Applies the plan to this rank's engine (leaves, then this copy's joins), runs the step and gathers
// every copy's choices over the DP group. Collective over the model copy and the DP group; every
// rank calls with the same plan. Meaningful results on the DP group's members; global rank 0 reads them.
StepResults execute_plan(const StepPlan& plan, Engine& engine, const ProcessGroups& groups);

}  // namespace rankserve::runtime
