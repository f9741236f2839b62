#include "runtime/serving/plan_builder.h"

#include "core/log.h"

namespace rankserve::runtime {

PlanDraft build_plan(AdmissionQueue& queue, RunningSet& running, const PlanOptions& options, Clock::time_point now) {
  PlanDraft draft;
  StepPlan& plan = draft.plan;
  plan.prompt_token_budget = options.prompt_token_budget;
  plan.gather_slots = options.limits.max_batch_size;
  // Running requests that end without finishing: cancelled, past their deadline, or stopped.
  for (const auto& r : running.all()) {
    if (auto e = queue.end_reason(*r, now)) {
      running.leave(*r);
      draft.ended.push_back({r, std::move(*e)});
    }
  }
  plan.leaves = running.take_leaves();
  for (EndedRequest& e : queue.take_ended(now)) draft.ended.push_back(std::move(e));
  queue.clear_cancels();
  // Joins: the oldest requests first, each to the least-loaded copy with a free slot and KV room.
  while (!queue.empty() && !queue.stopping()) {
    const std::shared_ptr<ServingRequest> r = queue.front();
    const int copy = choose_copy(running.loads(), r->kv_tokens(), options.limits);
    if (copy < 0) break;
    running.join(copy, r);
    draft.prompt_tokens += static_cast<uint64_t>(r->num_prompt_tokens);
    // The prompt's ids pass to the plan: the request needs only their count from here on.
    plan.joins.push_back({copy, SequenceSpec{r->id, std::move(r->prompt), r->max_tokens, r->sampling}});
    log::debug("request {} ({} prompt tokens, up to {} new) to copy {}", r->id, r->num_prompt_tokens, r->max_tokens, copy);
    queue.pop_front();
  }
  const bool any_running = running.any_running();
  if (queue.shutdown_due(any_running)) plan.command = PlanCommand::shutdown;
  plan.run = plan.command == PlanCommand::step && any_running;
  return draft;
}

}  // namespace rankserve::runtime
