// Test helpers for the scheduler's parts (tests/unit/*_test.cpp of runtime/serving): a byte-level
// tokenizer, a sink that records its events, and requests built without the tokenizer's encode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/generation_service.h"
#include "runtime/serving/serving_request.h"
#include "runtime/tokenizer/bpe_tokenizer.h"
#include "runtime/tokenizer/byte_level.h"

namespace rankserve::testing {

// A byte-level vocabulary with no merges: token id b is byte b, so tests feed text byte by byte.
inline const runtime::BpeTokenizer& bytes_tokenizer() {
  static const runtime::BpeTokenizer tokenizer = [] {
    runtime::BpeModel model;
    for (int b = 0; b < 256; ++b) {
      std::string spelling;
      runtime::byte_level::append_spelling(spelling, std::string(1, static_cast<char>(b)));
      model.vocab[spelling] = b;
    }
    return runtime::BpeTokenizer::from_model(model);
  }();
  return tokenizer;
}

// Records every event (tests call it on one thread).
struct RecordingSink final : GenerationSink {
  std::vector<TokenEvent> tokens;
  std::optional<FinishEvent> finish;
  int num_finishes = 0;
  void on_token(const TokenEvent& event) override { tokens.push_back(event); }
  void on_finish(const FinishEvent& event) override {
    finish = event;
    ++num_finishes;
  }
  std::string text() const {  // the streamed text, the finish's held-back part included
    std::string all;
    for (const TokenEvent& t : tokens) all += t.text;
    if (finish) all += finish->text;
    return all;
  }
};

// A queued-state request with `num_prompt_tokens` prompt tokens (ids 1, 2, ...), recording its events.
inline std::shared_ptr<runtime::ServingRequest> serving_request(RequestId id, int num_prompt_tokens, int max_tokens,
                                                                GenerationSettings settings = {}) {
  auto r = std::make_shared<runtime::ServingRequest>(bytes_tokenizer(), settings);
  r->id = id;
  for (int i = 0; i < num_prompt_tokens; ++i) r->prompt.push_back(1 + i % 255);
  r->num_prompt_tokens = num_prompt_tokens;
  r->max_tokens = max_tokens;
  r->ignore_eos = settings.ignore_eos;
  r->sink = std::make_shared<RecordingSink>();
  return r;
}

inline RecordingSink& sink_of(const runtime::ServingRequest& r) { return static_cast<RecordingSink&>(*r.sink); }

}  // namespace rankserve::testing
