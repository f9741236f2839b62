// One request inside the scheduler, from submit() to its single on_finish: what admission made of the
// TextRequest, where it runs, and its text stream. Shared by the scheduler's parts (admission.h,
// placement.h, plan_builder.h, delivery.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/generation_service.h"
#include "runtime/sampling_params.h"
#include "runtime/serving/text_stream.h"

namespace rankserve::runtime {

// Threading: the fields above `text` are set before the request is queued and read-only after, but
// `prompt`, which build_plan moves into the plan's join under the scheduler's mutex; `copy` is
// written and read under the scheduler's mutex; `text` and `num_generated` belong to the engine
// thread (and to fail_all once the engine has stopped); `finished` makes on_finish happen once.
struct ServingRequest {
  RequestId id = 0;
  std::vector<int32_t> prompt;  // token ids, BOS included when added; empty once it joined a copy
  int num_prompt_tokens = 0;    // prompt.size() at admission (the KV accounting, FinishEvent::prompt_tokens)
  int max_tokens = 0;           // >= 1, and prompt + max_tokens fits the model's context
  SamplingParams sampling;
  bool ignore_eos = false;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<GenerationSink> sink;
  TextStream text;
  int num_generated = 0;
  int copy = -1;  // the model copy (dp_rank) running it; -1 while queued
  std::atomic<bool> finished{false};

  // Borrows the tokenizer for `text` (it must outlive the request).
  ServingRequest(const BpeTokenizer& tokenizer, const GenerationSettings& settings)
      : text(tokenizer, settings.stop, settings.keep_stop) {}

  // The KV-cache capacity it holds while running, in tokens.
  int64_t kv_tokens() const { return static_cast<int64_t>(num_prompt_tokens) + max_tokens; }
};

// Sends `event` to the sink unless the request already finished: fills the token counts and, unless
// it is an error, the text held back so far. Never under the scheduler's mutex (a sink may call
// cancel()); the engine thread, or fail_all's thread.
void finish_request(ServingRequest& request, FinishEvent event);

// A request ended by the scheduler (cancelled, failed, past its deadline) and the event it gets.
struct EndedRequest {
  std::shared_ptr<ServingRequest> request;
  FinishEvent event;
};

}  // namespace rankserve::runtime
