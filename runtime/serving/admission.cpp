#include "runtime/serving/admission.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/setting_error.h"

namespace rankserve::runtime {

std::shared_ptr<ServingRequest> prepare_request(const TextRequest& request, std::shared_ptr<GenerationSink> sink,
                                                const AdmissionOptions& options, const BpeTokenizer& tokenizer,
                                                uint64_t default_seed) {
  const GenerationSettings& settings = request.settings;
  std::vector<int32_t> prompt = tokenizer.encode(request.prompt);
  const bool add_bos = settings.add_bos.value_or(options.add_bos_by_default);
  if (add_bos && options.bos_token_id >= 0) prompt.insert(prompt.begin(), options.bos_token_id);
  // The only check of a prompt on its way to the engines (Engine::add_sequence asserts it). Its ids
  // are the tokenizer's, which start-up checked against the model's vocabulary.
  const int context = options.max_context;
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
  auto r = std::make_shared<ServingRequest>(tokenizer, settings);
  r->num_prompt_tokens = static_cast<int>(prompt.size());
  r->prompt = std::move(prompt);
  r->max_tokens = std::min(std::max(settings.max_tokens, 1), context - r->num_prompt_tokens);
  r->ignore_eos = settings.ignore_eos;
  r->sampling = SamplingParams{settings.greedy,
                               settings.temperature,
                               settings.top_k,
                               settings.top_p,
                               settings.repetition_penalty,
                               settings.ignore_eos ? r->max_tokens : settings.min_tokens,
                               settings.seed.value_or(default_seed)};
  r->deadline = request.deadline;
  r->sink = std::move(sink);
  return r;
}

void AdmissionQueue::push(std::shared_ptr<ServingRequest> request) {
  if (!failure_.empty()) throw Error(ErrorCode::unavailable, fmt::format("server: cannot serve: {}", failure_));
  if (stopping_ || draining_) throw Error(ErrorCode::unavailable, "server: shutting down; not accepting new requests");
  if (!serving_) throw Error(ErrorCode::unavailable, "server: the model is not loaded yet");
  if (static_cast<int>(queue_.size()) >= max_queue_size_) {
    throw SettingError(ErrorCode::overloaded,
                       fmt::format("server: the queue is full ({} requests wait; {} {}); retry later", queue_.size(),
                                   setting_words(Setting::max_queue_size), max_queue_size_),
                       Setting::max_queue_size);
  }
  queue_.push_back(std::move(request));
}

void AdmissionQueue::cancel(RequestId id) { cancelled_.insert(id); }

void AdmissionQueue::clear_cancels() { cancelled_.clear(); }

std::optional<FinishEvent> AdmissionQueue::end_reason(const ServingRequest& request, Clock::time_point now) const {
  FinishEvent e;
  e.reason = FinishReason::error;
  if (cancelled_.count(request.id)) {
    e.reason = FinishReason::cancelled;
  } else if (!failure_.empty()) {
    e.error_message = failure_;
  } else if (stopping_) {
    e.error_message = fmt::format("server: stopped before the request finished ({})", stop_reason_);
  } else if (now >= request.deadline) {
    e.error_message = "request: the deadline passed before generation finished";
    e.error_code = ErrorCode::timeout;
  } else {
    return std::nullopt;
  }
  return e;
}

std::vector<EndedRequest> AdmissionQueue::take_ended(Clock::time_point now) {
  std::vector<EndedRequest> ended;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (auto e = end_reason(**it, now)) {
      ended.push_back({*it, std::move(*e)});
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return ended;
}

std::vector<std::shared_ptr<ServingRequest>> AdmissionQueue::take_all() {
  std::vector<std::shared_ptr<ServingRequest>> all(queue_.begin(), queue_.end());
  queue_.clear();
  return all;
}

void AdmissionQueue::stop(std::string reason) {
  stopping_ = true;
  stop_reason_ = std::move(reason);
}

void AdmissionQueue::fail(std::string reason) {
  if (failure_.empty()) failure_ = std::move(reason);
}

bool AdmissionQueue::shutdown_due(bool any_running) const {
  return stopping_ || (draining_ && queue_.empty() && !any_running) || (!failure_.empty() && !any_running);
}

std::string AdmissionQueue::not_ready_reason() const {
  if (!failure_.empty()) return failure_;
  if (stopping_) return "stopping";
  if (draining_) return "draining";
  if (!serving_) return "loading";
  return "";
}

}  // namespace rankserve::runtime
