#include "runtime/serving/scheduler.h"

#include <random>

#include "runtime/serving/delivery.h"
#include "runtime/serving/plan_builder.h"

namespace rankserve::runtime {

Scheduler::Scheduler(SchedulerOptions options, const BpeTokenizer& tokenizer)
    : options_(std::move(options)),
      tokenizer_(tokenizer),
      queue_(options_.max_queue_size),
      running_(options_.num_copies),
      seed_counter_(std::random_device{}()) {}

Scheduler::~Scheduler() = default;

int Scheduler::count_tokens(std::string_view text) const { return static_cast<int>(tokenizer_.encode(text).size()); }

ServiceStatus Scheduler::status() const {
  ServiceStatus s;
  const std::string probe = health_probe_ ? health_probe_() : "";
  std::lock_guard lock(mutex_);
  s.draining = queue_.draining();
  s.queue_size = queue_.size();
  s.max_queue_size = queue_.max_size();
  s.running = running_.num_running();
  if (options_.kv_cache_tokens > 0) {
    s.kv_cache_usage =
        static_cast<double>(running_.kv_tokens()) / static_cast<double>(options_.kv_cache_tokens * options_.num_copies);
  }
  s.prompt_tokens_total = counters_.prompt_tokens_total;
  s.generated_tokens_total = counters_.generated_tokens_total;
  s.steps_total = counters_.steps_total;
  if (heartbeat_ages_) s.heartbeat_age_s = heartbeat_ages_();
  s.not_ready_reason = not_ready_reason(queue_, probe, stall_, Clock::now(), options_.stall_after);
  s.ready = s.not_ready_reason.empty();
  return s;
}

RequestId Scheduler::submit(TextRequest request, std::shared_ptr<GenerationSink> sink) {
  const AdmissionOptions admission{options_.model.max_context, options_.bos_token_id, options_.add_bos_by_default};
  auto r = prepare_request(request, std::move(sink), admission, tokenizer_, seed_counter_.fetch_add(0x9E3779B97F4A7C15ull));
  r->id = next_id_.fetch_add(1);
  {
    std::lock_guard lock(mutex_);
    queue_.push(r);
  }
  wake_.notify_one();
  return r->id;
}

void Scheduler::cancel(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    queue_.cancel(id);
  }
  wake_.notify_one();
}

void Scheduler::drain() {
  {
    std::lock_guard lock(mutex_);
    queue_.drain();
  }
  wake_.notify_one();
}

void Scheduler::stop(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    queue_.stop(reason);
  }
  wake_.notify_one();
}

void Scheduler::set_kv_cache_tokens(int64_t tokens) {
  std::lock_guard lock(mutex_);
  options_.kv_cache_tokens = tokens;
}

void Scheduler::set_health_probe(HealthProbe probe) {
  std::lock_guard lock(mutex_);
  health_probe_ = std::move(probe);
}

void Scheduler::set_heartbeat_ages(HeartbeatAges ages) {
  std::lock_guard lock(mutex_);
  heartbeat_ages_ = std::move(ages);
}

void Scheduler::fail_all(const std::string& reason) {
  std::vector<std::shared_ptr<ServingRequest>> all;
  {
    std::lock_guard lock(mutex_);
    queue_.fail(reason);
    all = queue_.take_all();
    const auto running = running_.all();
    all.insert(all.end(), running.begin(), running.end());
  }
  FinishEvent event;
  event.reason = FinishReason::error;
  event.error_message = reason;
  for (auto& r : all) finish_request(*r, event);
  wake_.notify_one();
}

StepPlan Scheduler::next_plan() {
  std::unique_lock lock(mutex_);
  auto idle = [&] { return queue_.quiet() && !running_.any_running() && !running_.has_pending_leaves(); };
  if (idle()) wake_.wait_for(lock, options_.idle_tick, [&] { return !idle(); });
  const PlanOptions plan_options{options_.prompt_token_budget,
                                 PlacementLimits{options_.model.max_batch_size, options_.kv_cache_tokens}};
  PlanDraft draft = build_plan(queue_, running_, plan_options, Clock::now());
  counters_.prompt_tokens_total += draft.prompt_tokens;
  stall_.restart(Clock::now(), draft.plan.run);
  lock.unlock();
  for (EndedRequest& e : draft.ended) finish_request(*e.request, std::move(e.event));
  return std::move(draft.plan);
}

void Scheduler::deliver(const StepResults& results) {
  // Tokens go to the sinks outside the lock (a sink may call cancel()); membership changes under it.
  std::vector<std::vector<std::shared_ptr<ServingRequest>>> copies;
  {
    std::lock_guard lock(mutex_);
    for (int c = 0; c < running_.num_copies(); ++c) copies.push_back(running_.copy(c));
    ++counters_.steps_total;
    stall_.step_done(Clock::now());
  }
  std::vector<std::shared_ptr<ServingRequest>> done;
  uint64_t generated = 0;
  for (size_t c = 0; c < copies.size(); ++c) {
    for (size_t slot = 0; slot < copies[c].size(); ++slot) {
      const int dp_rank = static_cast<int>(c), s = static_cast<int>(slot);
      const Delivered d =
          deliver_token(*copies[c][slot], results.token(dp_rank, s), results.logprob(dp_rank, s), options_.model.eos_token_id);
      if (d.generated) ++generated;
      if (d.finished) done.push_back(copies[c][slot]);
    }
  }
  std::lock_guard lock(mutex_);
  counters_.generated_tokens_total += generated;
  for (const auto& r : done) running_.leave(*r);
}

void Scheduler::run(Engine& engine, const ProcessGroups& groups) {
  {
    std::lock_guard lock(mutex_);
    queue_.set_serving(true);
    stall_.restart(Clock::now());
  }
  while (true) {
    StepPlan plan = next_plan();
    distribute_plan(groups, plan);
    const bool shutdown = plan.command == PlanCommand::shutdown, run = plan.run;
    const StepResults results = execute_plan(std::move(plan), engine, groups);
    if (shutdown) break;
    if (run) deliver(results);
  }
  std::lock_guard lock(mutex_);
  queue_.set_serving(false);
}

void follow_plans(Engine& engine, const ProcessGroups& groups) {
  while (true) {
    StepPlan plan;
    distribute_plan(groups, plan);
    const bool shutdown = plan.command == PlanCommand::shutdown;
    execute_plan(std::move(plan), engine, groups);
    if (shutdown) break;
  }
}

}  // namespace rankserve::runtime
