// A scripted GenerationService for the http tier: an "engine" thread that emits deterministic
// tokens (" w0", " w1", ...; ids 1000, 1001, ...) one per step for every running request, and
// knobs to make it not ready, overloaded, hang until cancelled, or fail mid-generation.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/generation_service.h"

namespace rankserve::testing {

struct FakeScript {
  bool ready = true;
  std::string not_ready_reason = "loading";
  bool overloaded = false;         // submit throws Error(overloaded)
  bool unavailable = false;        // submit throws Error(unavailable)
  bool hang = false;               // requests never produce a token; they end when cancelled
  bool ignore_deadlines = false;   // requests outlive their deadlines (an engine that stalled)
  int fail_after_tokens = -1;      // >= 0: finish with an error after this many tokens
  bool fail_as_timeout = false;    // the failure above is a deadline (ErrorCode::timeout)
  int max_prompt_words = 1000;     // longer prompts get Error(bad_request) like a full context
  int stop_after_tokens = -1;      // >= 0: finish with reason stop after this many tokens
  bool block_submits = false;      // submit waits until a script without this is set (or the fake ends)
  bool deliver_in_submit = false;  // submit sends every token and the finish before it returns, as an engine
                                   // that ran the request at once: the handler reads them all in one batch
};

ModelInfo gpt_model_info();  // family "nemo_gpt", name "GPT"
ModelInfo opt_model_info();  // family "opt", name "OPT"

class FakeService final : public GenerationService {
 public:
  explicit FakeService(ModelInfo model = gpt_model_info());
  ~FakeService() override;

  const ModelInfo& model() const override { return model_; }
  ServiceStatus status() const override;
  RequestId submit(TextRequest request, std::shared_ptr<GenerationSink> sink) override;
  void cancel(RequestId id) override;
  int count_tokens(std::string_view text) const override;

  void set_script(const FakeScript& script);
  std::vector<TextRequest> submitted() const;  // every accepted request, in submit order
  size_t num_cancelled() const;
  // Waits until at least `count` requests were cancelled; false at the deadline.
  bool wait_for_cancels(size_t count, std::chrono::milliseconds deadline) const;
  // Waits until at least `count` requests were submitted; false at the deadline.
  bool wait_for_submits(size_t count, std::chrono::milliseconds deadline) const;
  // Waits until at least `count` submit calls are waiting on block_submits; false at the deadline.
  bool wait_for_blocked_submits(size_t count, std::chrono::milliseconds deadline) const;

  // The continuation the fake generates for `n` tokens: " w0 w1 ... w{n-1}".
  static std::string continuation(int n);

 private:
  struct Running {
    RequestId id;
    TextRequest request;
    std::shared_ptr<GenerationSink> sink;
    int generated = 0;
    bool cancel = false;
  };
  void run_engine();
  // One step of `r` under the lock: true when it finished (`finish` set), else `token` may be set.
  bool advance(Running& r, Clock::time_point now, std::optional<TokenEvent>& token, FinishEvent& finish);

  ModelInfo model_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  FakeScript script_;
  std::deque<Running> running_;
  std::vector<TextRequest> submitted_;
  std::vector<RequestId> cancelled_;
  RequestId next_id_ = 1;
  size_t num_blocked_ = 0;  // submit calls waiting on block_submits
  bool stop_ = false;
  uint64_t generated_total_ = 0;
  uint64_t steps_total_ = 0;  // engine steps that produced an event
  std::thread engine_;
};

}  // namespace rankserve::testing
