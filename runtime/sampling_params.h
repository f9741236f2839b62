// How to pick each next token. Torch-free; validated by whoever builds it (CLI, HTTP handlers).
#pragma once

#include <cstdint>

namespace rankserve::runtime {

struct SamplingParams {
  bool greedy = true;               // argmax; the fields below but repetition_penalty and min_tokens are ignored
  float temperature = 1.0f;         // > 0
  int top_k = 0;                    // 0: no limit
  float top_p = 1.0f;               // nucleus mass in (0, 1]
  float repetition_penalty = 1.0f;  // > 0; 1: off (CTRL rule: positive logits divided, negative multiplied)
  int min_tokens = 0;               // EOS is blocked until this many tokens are generated
  uint64_t seed = 0;                // the same seed, prompt and model give the same tokens
};

}  // namespace rankserve::runtime
