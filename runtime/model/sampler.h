// Picks next tokens from logits: repetition penalty, min_tokens, temperature, top-k, top-p, and a
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
  // `num_generated` tokens generated so far (for min_tokens). Never aborts the process: any logits and
  // parameters give a token or an Error (runtime for non-finite logits, bad_request for parameters that
  // leave nothing to draw), which fails this sequence only.
  // Logits on a device go to pick_with_tensor_ops; CPU logits take the CPU path (its kernels).
  Choice pick(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated);

  // The same choice in tensor ops on the logits' device (any device, CPU included): only the token,
  // its log-probability and two flags are copied to the host, once. Greedy picks equal pick()'s;
  // sampled ones draw from the same tokens with the same weights by an exponential race
  // (argmax of p / Exp(1) noise) with a generator of the logits' device seeded with the sequence's
  // seed (not pick()'s draws). Throws as pick() does.
  Choice pick_with_tensor_ops(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated);

 private:
  at::Generator& generator_for(at::Device device);

  SamplingParams params_;
  int eos_token_id_;
  int sampleable_vocab_;
  at::Generator generator_;         // CPU
  at::Generator device_generator_;  // a device's, made on first use
};

}  // namespace rankserve::runtime
