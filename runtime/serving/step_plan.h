// The step plan: what every rank does in one iteration of the serving loop. Global rank 0 builds it
// (runtime/serving/scheduler.h) and hands each model copy its part; every rank applies it to its
// engine in the same order, so the ranks can never disagree about which sequences run. Engine thread only.
#pragma once

#include <cstdint>
#include <span>
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
  std::vector<uint64_t> leaves;     // sequence ids to remove, from any copy (an unknown id is a no-op)
  std::vector<PlanJoin> joins;      // rank 0: every copy's; the other ranks: their own copy's only
};

std::vector<std::byte> encode_plan(const StepPlan& plan);
// Throws Error(runtime) on a malformed buffer (a rank out of step).
StepPlan decode_plan(std::span<const std::byte> bytes);

// What the ranks of copy `dp_rank` receive of `plan`: every field but the joins, and that copy's joins
// in plan order. Pure.
StepPlan plan_for_copy(const StepPlan& plan, int dp_rank);

// Global rank 0 hands each copy its plan_for_copy (encoded without building it): to the copy's first rank (first stage, TP rank
// 0) point-to-point over rank 0's DP group (which holds exactly those ranks), then within the copy by a broadcast over the first
// stage's TP group and one over each PP group. Rank 0 keeps the whole plan; every other rank receives its copy's part into
// `plan`. Collective: every rank calls once per iteration. Throws Error(runtime) as the collectives do (a dead or hung peer, the
// deadline) or on a malformed plan; a rank that no message reaches because a peer died is stopped by the watchdog.
void distribute_plan(const ProcessGroups& groups, StepPlan& plan);

// One slot of the gathered results: what a copy chose for the sequence in that slot. Crosses the DP
// group as bytes, so token ids stay integers.
struct SlotChoice {
  int32_t token = kNoToken;  // a token id, kNoToken (an empty slot, or the prompt is still being read) or kSamplingFailed
  float logprob = 0;
};

// The choices of every copy after a step: [dp_rank][slot] in each copy's join order.
struct StepResults {
  int32_t slots = 0;
  std::vector<SlotChoice> choices;  // dp_size x slots, copy after copy
  int32_t token(int dp_rank, int slot) const { return at(dp_rank, slot).token; }
  float logprob(int dp_rank, int slot) const { return at(dp_rank, slot).logprob; }

 private:
  const SlotChoice& at(int dp_rank, int slot) const {
    return choices[static_cast<size_t>(dp_rank) * static_cast<size_t>(slots) + static_cast<size_t>(slot)];
  }
};

// Gathers every copy's choices (`mine`: this copy's, in join order, at most `slots`) over `dp`, one
// all-gather of `slots` SlotChoices per member. Collective over `dp`; every member passes the same `slots`.
StepResults gather_choices(std::span<const TokenChoice> mine, int32_t slots, Communicator& dp);

// Applies the plan to this rank's engine (leaves, then this copy's joins, whose sequences move into
// the engine), runs the step and gathers
// every copy's choices over the DP group. Collective over the model copy and the DP group; every
// rank calls with its distribute_plan result. Meaningful results on the DP group's members; global
// rank 0 reads them.
StepResults execute_plan(StepPlan plan, Engine& engine, const ProcessGroups& groups);

}  // namespace rankserve::runtime
