#include "runtime/serving/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "core/setting_error.h"
#include "runtime/serving/text_stream.h"

namespace rankserve::runtime {

// One request from submit() to on_finish. Fields below `sink` are touched by the engine thread only
// (and by fail_all once the engine has stopped); `finished` guards the single on_finish.
struct Scheduler::Request {
  RequestId id = 0;
  std::vector<int32_t> prompt;
  int max_new_tokens = 0;
  SamplingParams sampling;
  bool ignore_eos = false;
  Clock::time_point deadline;
  std::shared_ptr<GenerationSink> sink;
  TextStream text;
  int num_generated = 0;
  int copy = -1;  // the model copy running it; -1 while queued
  std::atomic<bool> finished{false};

  Request(const BpeTokenizer& tokenizer, const GenerationSettings& settings)
      : text(tokenizer, settings.stop, settings.keep_stop) {}

  // The KV-cache capacity it holds while running, in tokens.
  int64_t kv_tokens() const { return static_cast<int64_t>(prompt.size()) + max_new_tokens; }
};

Scheduler::Scheduler(SchedulerOptions options, const BpeTokenizer& tokenizer)
    : options_(std::move(options)), tokenizer_(tokenizer), seed_counter_(std::random_device{}()) {
  running_.resize(static_cast<size_t>(options_.num_copies));
  copy_kv_tokens_.assign(static_cast<size_t>(options_.num_copies), 0);
}

Scheduler::~Scheduler() = default;

int Scheduler::count_tokens(std::string_view text) const { return static_cast<int>(tokenizer_.encode(text).size()); }

ServiceStatus Scheduler::status() const {
  ServiceStatus s;
  std::string probe = health_probe_ ? health_probe_() : "";
  std::lock_guard lock(mutex_);
  s.draining = draining_;
  s.queue_size = static_cast<int>(queue_.size());
  s.max_queue_size = options_.max_queue_size;
  int64_t kv = 0;
  for (const auto& copy : running_) s.running += static_cast<int>(copy.size());
  for (int64_t t : copy_kv_tokens_) kv += t;
  if (options_.kv_cache_tokens > 0)
    s.kv_cache_usage = static_cast<double>(kv) / static_cast<double>(options_.kv_cache_tokens * options_.num_copies);
  s.prompt_tokens_total = prompt_tokens_total_;
  s.generated_tokens_total = generated_tokens_total_;
  s.steps_total = steps_total_;
  if (heartbeat_ages_) s.heartbeat_age_s = heartbeat_ages_();
  const double step_age = std::chrono::duration<double>(Clock::now() - last_progress_).count();
  if (!failure_.empty()) s.not_ready_reason = failure_;
  else if (stopping_) s.not_ready_reason = "stopping";
  else if (draining_) s.not_ready_reason = "draining";
  else if (!loop_running_) s.not_ready_reason = "loading";
  else if (!probe.empty()) s.not_ready_reason = probe;
  else if (step_in_progress_ && Clock::now() - last_progress_ > options_.stall_after) {
    s.not_ready_reason = fmt::format("the engine has not finished a step for {:.1f} s", step_age);
  }
  s.ready = s.not_ready_reason.empty();
  return s;
}

RequestId Scheduler::submit(TextRequest request, std::shared_ptr<GenerationSink> sink) {
  const GenerationSettings& settings = request.settings;
  std::vector<int32_t> prompt;
  const bool add_bos = settings.add_bos.value_or(options_.add_bos_by_default);
  if (add_bos && options_.bos_token_id >= 0) prompt.push_back(options_.bos_token_id);
  const std::vector<int32_t> ids = tokenizer_.encode(request.prompt);
  prompt.insert(prompt.end(), ids.begin(), ids.end());
  const int context = options_.model.max_context;
  if (prompt.empty()) throw Error(ErrorCode::bad_request, "request: the prompt is empty");
  if (static_cast<int>(prompt.size()) >= context) {
    throw Error(ErrorCode::bad_request, fmt::format("request: the prompt has {} tokens; the model's context is {} tokens "
                                                    "and at least one must be left to generate (shorten the prompt)",
                                                    prompt.size(), context));
  }
  if (settings.max_tokens > context) {
    throw Error(ErrorCode::bad_request, fmt::format("request: {}={} is more than the model's context of {} tokens",
                                                    settings.max_tokens_field, settings.max_tokens, context));
  }
  auto r = std::make_shared<Request>(tokenizer_, settings);
  r->prompt = std::move(prompt);
  r->max_new_tokens = std::min(std::max(settings.max_tokens, 1), context - static_cast<int>(r->prompt.size()));
  r->ignore_eos = settings.ignore_eos;
  r->sampling = SamplingParams{settings.greedy,
                               settings.temperature,
                               settings.top_k,
                               settings.top_p,
                               settings.repetition_penalty,
                               settings.ignore_eos ? r->max_new_tokens : settings.min_tokens,
                               settings.seed.value_or(seed_counter_.fetch_add(0x9E3779B97F4A7C15ull))};
  r->deadline = request.deadline;
  r->sink = std::move(sink);
  r->id = next_id_.fetch_add(1);
  {
    std::lock_guard lock(mutex_);
    if (!failure_.empty()) throw Error(ErrorCode::unavailable, fmt::format("server: cannot serve: {}", failure_));
    if (stopping_ || draining_) throw Error(ErrorCode::unavailable, "server: shutting down; not accepting new requests");
    if (!loop_running_) throw Error(ErrorCode::unavailable, "server: the model is not loaded yet");
    if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
      throw SettingError(ErrorCode::overloaded,
                         fmt::format("server: the queue is full ({} requests wait; {} {}); retry later", queue_.size(),
                                     setting_words(Setting::max_queue_size), options_.max_queue_size),
                         Setting::max_queue_size);
    }
    queue_.push_back(r);
  }
  wake_.notify_one();
  return r->id;
}

void Scheduler::cancel(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    cancelled_.insert(id);
  }
  wake_.notify_one();
}

void Scheduler::drain() {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  wake_.notify_one();
}

void Scheduler::stop(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    stop_reason_ = reason;
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

void Scheduler::finish(Request& r, FinishEvent event) {
  if (r.finished.exchange(true)) return;
  event.prompt_tokens = static_cast<int>(r.prompt.size());
  event.completion_tokens = r.num_generated;
  if (event.reason != FinishReason::error) event.text = r.text.finish();
  r.sink->on_finish(event);
}

void Scheduler::fail_all(const std::string& reason) {
  std::vector<std::shared_ptr<Request>> all;
  {
    std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = reason;
    all.assign(queue_.begin(), queue_.end());
    queue_.clear();
    for (auto& copy : running_) all.insert(all.end(), copy.begin(), copy.end());
  }
  FinishEvent event;
  event.reason = FinishReason::error;
  event.error_message = reason;
  for (auto& r : all) finish(*r, event);
  wake_.notify_one();
}

bool Scheduler::any_running() const {
  return std::any_of(running_.begin(), running_.end(), [](const auto& copy) { return !copy.empty(); });
}

StepPlan Scheduler::build_plan() {
  StepPlan plan;
  plan.prompt_token_budget = options_.prompt_token_budget;
  plan.gather_slots = options_.model.max_batch_size;
  std::vector<std::pair<std::shared_ptr<Request>, FinishEvent>> ended;  // finished outside the lock
  std::unique_lock lock(mutex_);
  auto idle = [&] {
    return queue_.empty() && !any_running() && pending_leaves_.empty() && !stopping_ && !draining_ && failure_.empty();
  };
  if (idle()) wake_.wait_for(lock, options_.idle_tick, [&] { return !idle(); });

  const auto now = Clock::now();
  auto end_reason = [&](const Request& r) -> std::optional<FinishEvent> {
    FinishEvent e;
    e.reason = FinishReason::error;
    if (cancelled_.count(r.id)) e.reason = FinishReason::cancelled;
    else if (!failure_.empty()) e.error_message = failure_;
    else if (stopping_) e.error_message = fmt::format("server: stopped before the request finished ({})", stop_reason_);
    else if (now >= r.deadline) {
      e.error_message = "request: the deadline passed before generation finished";
      e.error_code = ErrorCode::timeout;
    } else return std::nullopt;
    return e;
  };
  // Running requests that end without finishing: cancelled, past their deadline, or stopped.
  plan.leaves = std::move(pending_leaves_);
  pending_leaves_.clear();
  for (size_t c = 0; c < running_.size(); ++c) {
    auto& copy = running_[c];
    for (auto it = copy.begin(); it != copy.end();) {
      if (auto e = end_reason(**it)) {
        plan.leaves.push_back((*it)->id);
        copy_kv_tokens_[c] -= (*it)->kv_tokens();
        ended.emplace_back(*it, *e);
        it = copy.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (auto e = end_reason(**it)) {
      ended.emplace_back(*it, *e);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  cancelled_.clear();
  // Joins: the oldest requests first, each to the least-loaded copy with a free slot and KV room.
  while (!queue_.empty() && !stopping_) {
    auto& r = queue_.front();
    const int64_t need = r->kv_tokens();
    int best = -1;
    for (int c = 0; c < options_.num_copies; ++c) {
      const auto& copy = running_[static_cast<size_t>(c)];
      if (static_cast<int>(copy.size()) >= options_.model.max_batch_size) continue;
      // A copy with nothing running always takes a request, so one that exceeds the budget still runs.
      if (options_.kv_cache_tokens > 0 && !copy.empty() &&
          copy_kv_tokens_[static_cast<size_t>(c)] + need > options_.kv_cache_tokens)
        continue;
      if (best < 0 || copy.size() < running_[static_cast<size_t>(best)].size()) best = c;
    }
    if (best < 0) break;
    r->copy = best;
    running_[static_cast<size_t>(best)].push_back(r);
    copy_kv_tokens_[static_cast<size_t>(best)] += need;
    prompt_tokens_total_ += r->prompt.size();
    plan.joins.push_back({best, SequenceSpec{r->id, r->prompt, r->max_new_tokens, r->sampling}});
    log::debug("request {} ({} prompt tokens, up to {} new) to copy {}", r->id, r->prompt.size(), r->max_new_tokens, best);
    queue_.pop_front();
  }
  const bool running = any_running();
  if (stopping_ || (draining_ && queue_.empty() && !running) || (!failure_.empty() && !running)) {
    plan.command = PlanCommand::shutdown;
  }
  plan.run = plan.command == PlanCommand::step && running;
  step_in_progress_ = plan.run;
  last_progress_ = Clock::now();
  lock.unlock();
  for (auto& [r, e] : ended) finish(*r, e);
  return plan;
}

void Scheduler::deliver(const StepResults& results) {
  // Tokens go to the sinks outside the lock (a sink may call cancel()); membership changes under it.
  std::vector<std::vector<std::shared_ptr<Request>>> copies;
  {
    std::lock_guard lock(mutex_);
    copies = running_;
    ++steps_total_;
    step_in_progress_ = false;
    last_progress_ = Clock::now();
  }
  std::vector<std::shared_ptr<Request>> done;
  uint64_t generated = 0;
  for (size_t c = 0; c < copies.size(); ++c) {
    for (size_t slot = 0; slot < copies[c].size(); ++slot) {
      Request& r = *copies[c][slot];
      const int32_t token = results.token(static_cast<int>(c), static_cast<int>(slot));
      if (token == kSamplingFailed && !r.finished) {
        FinishEvent failed;
        failed.reason = FinishReason::error;
        failed.error_code = ErrorCode::runtime;
        failed.error_message =
            "sampling: no next token could be drawn for this request (the model's logits are not finite, "
            "or its sampling values leave nothing to draw); the server goes on";
        finish(r, failed);
        done.push_back(copies[c][slot]);
        continue;
      }
      if (token < 0 || r.finished) continue;
      ++r.num_generated;
      ++generated;
      // EOS counts as a generated token with its log-probability, but carries no text.
      const bool eos = token == options_.model.eos_token_id && !r.ignore_eos;
      TokenEvent event{token, results.logprob(static_cast<int>(c), static_cast<int>(slot)), "", ""};
      std::optional<FinishReason> end;
      if (eos) {
        end = FinishReason::stop;
      } else {
        event.token = tokenizer_.decode(std::span(&token, 1));
        TextStream::Piece piece = r.text.push(token);
        event.text = std::move(piece.text);
        if (piece.stopped) end = FinishReason::stop;
      }
      r.sink->on_token(event);
      if (!end && r.num_generated >= r.max_new_tokens) end = FinishReason::length;
      if (end) {
        FinishEvent finished;
        finished.reason = *end;
        finish(r, finished);
        done.push_back(copies[c][slot]);
      }
    }
  }
  std::lock_guard lock(mutex_);
  generated_tokens_total_ += generated;
  for (const auto& r : done) {
    auto& copy = running_[static_cast<size_t>(r->copy)];
    std::erase(copy, r);
    copy_kv_tokens_[static_cast<size_t>(r->copy)] -= r->kv_tokens();
    pending_leaves_.push_back(r->id);
  }
}

void Scheduler::run(Engine& engine, const ProcessGroups& groups) {
  {
    std::lock_guard lock(mutex_);
    loop_running_ = true;
    last_progress_ = Clock::now();
  }
  while (true) {
    StepPlan plan = build_plan();
    broadcast_plan(*groups.world, plan);
    const StepResults results = execute_plan(plan, engine, groups);
    if (plan.command == PlanCommand::shutdown) break;
    if (plan.run) deliver(results);
  }
  std::lock_guard lock(mutex_);
  loop_running_ = false;
}

void follow_plans(Engine& engine, const ProcessGroups& groups) {
  while (true) {
    StepPlan plan;
    broadcast_plan(*groups.world, plan);
    execute_plan(plan, engine, groups);
    if (plan.command == PlanCommand::shutdown) break;
  }
}

}  // namespace rankserve::runtime
