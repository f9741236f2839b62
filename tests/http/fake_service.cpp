#include "tests/http/fake_service.h"

#include <fmt/format.h>

#include <sstream>

#include "core/error.h"
#include "core/setting_error.h"

namespace rankserve::testing {

ModelInfo gpt_model_info() {
  ModelInfo m;
  m.name = "GPT";
  m.family = "nemo_gpt";
  m.source = "random/tiny";
  m.max_context = 2048;
  m.vocab_size = 50257;
  m.max_batch_size = 128;
  m.eos_token_id = 50256;
  return m;
}

ModelInfo opt_model_info() {
  ModelInfo m = gpt_model_info();
  m.name = "OPT";
  m.family = "opt";
  m.max_batch_size = 256;
  m.eos_token_id = 2;
  return m;
}

FakeService::FakeService(ModelInfo model) : model_(std::move(model)), engine_([this] { run_engine(); }) {}

FakeService::~FakeService() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  engine_.join();
}

ServiceStatus FakeService::status() const {
  std::lock_guard lock(mutex_);
  ServiceStatus s;
  s.ready = script_.ready;
  s.not_ready_reason = script_.ready ? "" : script_.not_ready_reason;
  s.running = static_cast<int>(running_.size());
  s.max_queue_size = 16;
  s.kv_cache_usage = 0.25;
  s.heartbeat_age_s = {0.5, 1.5};
  s.generated_tokens_total = generated_total_;
  s.steps_total = steps_total_;
  return s;
}

int FakeService::count_tokens(std::string_view text) const {
  std::istringstream words{std::string(text)};
  int n = 0;
  for (std::string w; words >> w;) ++n;
  return n;
}

RequestId FakeService::submit(TextRequest request, std::shared_ptr<GenerationSink> sink) {
  std::unique_lock lock(mutex_);
  if (script_.block_submits) {
    ++num_blocked_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !script_.block_submits || stop_; });
    --num_blocked_;
  }
  if (script_.unavailable) throw Error(ErrorCode::unavailable, "server: shutting down; not accepting new requests");
  if (script_.overloaded)
    // Worded as the runtime's scheduler words it: the setting in its own words, tagged for the front end.
    throw SettingError(ErrorCode::overloaded,
                       "server: the queue is full (16 requests wait; the maximum queue size 16); retry later",
                       Setting::max_queue_size);
  if (request.prompt.empty()) throw Error(ErrorCode::bad_request, "request: the prompt is empty");
  if (count_tokens(request.prompt) > script_.max_prompt_words) {
    throw Error(ErrorCode::bad_request, fmt::format("request: the prompt has {} tokens; the model's context is {} tokens",
                                                    count_tokens(request.prompt), script_.max_prompt_words));
  }
  const RequestId id = next_id_++;
  submitted_.push_back(request);
  if (script_.deliver_in_submit && !script_.hang) {
    Running r{id, std::move(request), std::move(sink)};
    std::vector<TokenEvent> tokens;
    std::optional<TokenEvent> token;
    FinishEvent finish;
    while (!advance(r, Clock::now(), token, finish)) {
      if (token) tokens.push_back(std::move(*token));
      token.reset();
    }
    ++steps_total_;
    changed_.notify_all();
    lock.unlock();
    for (const TokenEvent& t : tokens) r.sink->on_token(t);
    r.sink->on_finish(finish);
    return id;
  }
  running_.push_back(Running{id, std::move(request), std::move(sink)});
  changed_.notify_all();
  return id;
}

void FakeService::cancel(RequestId id) {
  std::lock_guard lock(mutex_);
  for (Running& r : running_) {
    if (r.id == id && !r.cancel) {
      r.cancel = true;
      cancelled_.push_back(id);
    }
  }
  changed_.notify_all();
}

void FakeService::set_script(const FakeScript& script) {
  {
    std::lock_guard lock(mutex_);
    script_ = script;
  }
  changed_.notify_all();
}

std::vector<TextRequest> FakeService::submitted() const {
  std::lock_guard lock(mutex_);
  return submitted_;
}

size_t FakeService::num_cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_.size();
}

bool FakeService::wait_for_cancels(size_t count, std::chrono::milliseconds deadline) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return cancelled_.size() >= count; });
}

bool FakeService::wait_for_submits(size_t count, std::chrono::milliseconds deadline) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return submitted_.size() >= count; });
}

bool FakeService::wait_for_blocked_submits(size_t count, std::chrono::milliseconds deadline) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return num_blocked_ >= count; });
}

std::string FakeService::continuation(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += fmt::format(" w{}", i);
  return out;
}

bool FakeService::advance(Running& r, Clock::time_point now, std::optional<TokenEvent>& token, FinishEvent& finish) {
  finish.prompt_tokens = count_tokens(r.request.prompt) + (r.request.settings.add_bos.value_or(false) ? 1 : 0);
  finish.completion_tokens = r.generated;
  if (r.cancel) {
    finish.reason = FinishReason::cancelled;
    return true;
  }
  if (now >= r.request.deadline && !script_.ignore_deadlines) {
    finish.reason = FinishReason::error;
    finish.error_code = ErrorCode::timeout;
    finish.error_message = "request: the deadline passed before generation finished";
    return true;
  }
  if (script_.fail_after_tokens >= 0 && r.generated >= script_.fail_after_tokens) {
    finish.reason = FinishReason::error;
    finish.error_code = script_.fail_as_timeout ? ErrorCode::timeout : ErrorCode::unavailable;
    finish.error_message = script_.fail_as_timeout ? "request: the deadline passed before generation finished"
                                                   : "runtime: rank 1 (host n2) failed: connection reset";
    return true;
  }
  if (script_.stop_after_tokens >= 0 && r.generated >= script_.stop_after_tokens) {
    finish.reason = FinishReason::stop;
    return true;
  }
  if (r.generated >= r.request.settings.max_tokens) {
    finish.reason = FinishReason::length;
    return true;
  }
  if (script_.hang) return false;
  TokenEvent t;
  t.id = 1000 + r.generated;
  t.logprob = -0.25f * static_cast<float>(r.generated + 1);
  t.token = fmt::format(" w{}", r.generated);
  t.text = t.token;
  ++r.generated;
  ++generated_total_;
  token = std::move(t);
  return false;
}

void FakeService::run_engine() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    // One step: a token for every running request (sinks are called without the lock held, as the
    // real engine thread would call them).
    std::vector<std::pair<std::shared_ptr<GenerationSink>, TokenEvent>> tokens;
    std::vector<std::pair<std::shared_ptr<GenerationSink>, FinishEvent>> finishes;
    const auto now = Clock::now();
    for (auto it = running_.begin(); it != running_.end();) {
      std::optional<TokenEvent> token;
      FinishEvent finish;
      const bool done = advance(*it, now, token, finish);
      if (token) tokens.emplace_back(it->sink, std::move(*token));
      if (done) {
        finishes.emplace_back(it->sink, std::move(finish));
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    if (!tokens.empty() || !finishes.empty()) ++steps_total_;
    lock.unlock();
    for (auto& [sink, t] : tokens) sink->on_token(t);
    for (auto& [sink, f] : finishes) sink->on_finish(f);
    lock.lock();
    changed_.notify_all();
    // A step every millisecond while there is work; otherwise sleep until a submit or cancel.
    const bool busy = !running_.empty() && !script_.hang;
    changed_.wait_for(lock, busy ? std::chrono::milliseconds(1) : std::chrono::milliseconds(20));
  }
}

}  // namespace rankserve::testing
