// Picks next tokens from logits: repetition penalty, min_length, temperature, top-k, top-p, and a
// per-sequence seeded generator. Internal to the runtime (torch). Engine thread only.
#pragma once

#include <ATen/ATen.h>

#include <span>

#include "runtime/sampling_params.h"

namespace rankserve::runtime {

class Sampler {
 public:
  // Ids at or past `sampleable_vocab` (padded vocabulary rows) are never picked; -1: no limit.
  Sampler(const SamplingParams& params, int eos_token_id, int sampleable_vocab = -1);

  struct Choice {
    int32_t token = 0;
    float logprob = 0;  // log-probability under the model's own distribution (before any processing)
  };

  // `logits` [vocab] float32 of one sequence; `sequence` its tokens so far (for the penalty);
  // `num_generated` tokens generated so far (for min_length). Never aborts the process: any logits and
  // parameters give a token or an Error (runtime for non-finite logits, bad_request for parameters that
  // leave nothing to draw), which fails this sequence only.
  Choice pick(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated);

 private:
  SamplingParams params_;
  int eos_token_id_;
  int sampleable_vocab_;
  at::Generator generator_;
};

}  // namespace rankserve::runtime
