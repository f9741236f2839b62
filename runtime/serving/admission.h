// Admission: what a submitted request becomes (tokenized, checked against the model's context) and the
// queue it waits in, with the service's lifecycle (loading, serving, draining, stopping, failed) that
// refuses new requests, and the cancels and deadlines that end waiting or running ones. Used by the
// Scheduler (scheduler.h), which holds the locks.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/generation_service.h"
#include "runtime/serving/serving_request.h"
#include "runtime/tokenizer/bpe_tokenizer.h"

namespace rankserve::runtime {

struct AdmissionOptions {
  int max_context = 0;              // tokens per sequence, prompt included (ModelInfo::max_context)
  int bos_token_id = -1;            // prepended when add_bos (or the default) says so; -1: never
  bool add_bos_by_default = false;  // for requests that leave add_bos unset
};

// Tokenizes `request` and checks it against the model's context; `default_seed` seeds a request that
// names none. The id is left 0 (the caller numbers accepted requests). Any thread: reads only its
// arguments (the tokenizer is const). Throws Error(bad_request) for an empty prompt, a prompt that
// leaves no token to generate, or max_tokens past the context (naming the protocol's field).
std::shared_ptr<ServingRequest> prepare_request(const TextRequest& request, std::shared_ptr<GenerationSink> sink,
                                                const AdmissionOptions& options, const BpeTokenizer& tokenizer,
                                                uint64_t default_seed);

// The queue of accepted requests not yet running, oldest first, and the lifecycle that admits them.
// Not thread-safe: the Scheduler calls every method under its mutex.
class AdmissionQueue {
 public:
  explicit AdmissionQueue(int max_queue_size) : max_queue_size_(max_queue_size) {}

  // Queues `request`. Throws Error(unavailable) once failed, stopping or draining, or before the
  // serving loop runs; Error(overloaded) when max_queue_size requests already wait.
  void push(std::shared_ptr<ServingRequest> request);

  // The request (queued or running) ends with FinishReason::cancelled at the next end_reason();
  // unknown and finished ids are forgotten at the next clear_cancels().
  void cancel(RequestId id);
  void clear_cancels();

  // Why `request` must end now without finishing, if it must: cancelled, the service failed or
  // stops, or `now` is past its deadline (Error(timeout)).
  std::optional<FinishEvent> end_reason(const ServingRequest& request, Clock::time_point now) const;
  // Removes the queued requests that must end (end_reason), in queue order.
  std::vector<EndedRequest> take_ended(Clock::time_point now);
  // Removes every queued request (fail_all).
  std::vector<std::shared_ptr<ServingRequest>> take_all();

  bool empty() const { return queue_.empty(); }
  int size() const { return static_cast<int>(queue_.size()); }
  int max_size() const { return max_queue_size_; }
  const std::shared_ptr<ServingRequest>& front() const { return queue_.front(); }
  void pop_front() { queue_.pop_front(); }

  // The lifecycle. serving: the loop runs (set and cleared by Scheduler::run). drain and stop are
  // idempotent (stop keeps the last reason), fail keeps the first reason.
  void set_serving(bool serving) { serving_ = serving; }
  void drain() { draining_ = true; }
  void stop(std::string reason);
  void fail(std::string reason);
  bool serving() const { return serving_; }
  bool draining() const { return draining_; }
  bool stopping() const { return stopping_; }
  const std::string& failure() const { return failure_; }  // "" unless failed

  // Nothing queued and no lifecycle change to act on: the loop may wait.
  bool quiet() const { return queue_.empty() && !stopping_ && !draining_ && failure_.empty(); }
  // Whether the next plan is the shutdown plan, given whether any copy still runs sequences: at once
  // when stopping; after the last request when draining or failed.
  bool shutdown_due(bool any_running) const;
  // "" when serving normally, else the lifecycle's reason not to be ready: the failure, "stopping",
  // "draining" or "loading".
  std::string not_ready_reason() const;

 private:
  int max_queue_size_;
  std::deque<std::shared_ptr<ServingRequest>> queue_;
  std::unordered_set<RequestId> cancelled_;
  bool serving_ = false;
  bool draining_ = false;
  bool stopping_ = false;
  std::string stop_reason_;
  std::string failure_;
};

}  // namespace rankserve::runtime
