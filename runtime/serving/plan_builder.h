// Plan building: one iteration's StepPlan from the admission queue and the running set — the leaves
// (finished, cancelled, failed, past their deadline), the joins (queued requests placed on a copy),
// whether to step, and when to shut down. Called by Scheduler::run on the engine thread.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/serving/admission.h"
#include "runtime/serving/placement.h"
#include "runtime/serving/serving_request.h"
#include "runtime/serving/step_plan.h"

namespace rankserve::runtime {

struct PlanOptions {
  int prompt_token_budget = 512;  // prompt tokens per step, all prefilling sequences together
  PlacementLimits limits;         // per copy; limits.max_batch_size is also the plan's gather_slots
};

struct PlanDraft {
  StepPlan plan;
  std::vector<EndedRequest> ended;  // to finish outside the lock (running ones first, then queued)
  uint64_t prompt_tokens = 0;       // prompt tokens of this plan's joins
};

// Builds the next plan and applies it to `queue` and `running`: running requests that must end
// (AdmissionQueue::end_reason at `now`) leave, queued ones that must end are dropped, cancels are
// cleared, then the oldest queued requests join (choose_copy) until one does not fit or the service
// stops; a joining request's prompt moves into its join. The plan's leaves are every pending leave,
// in order. Not thread-safe: under the Scheduler's
// mutex. Ends no request itself (the caller sends `ended` their events).
PlanDraft build_plan(AdmissionQueue& queue, RunningSet& running, const PlanOptions& options, Clock::time_point now);

}  // namespace rankserve::runtime
