#include "runtime/model/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>
#include <vector>

#include "runtime/model/cpu_kernels.h"

namespace rankserve::runtime {

Sampler::Sampler(const SamplingParams& params, int eos_token_id, int sampleable_vocab)
    : params_(params), eos_token_id_(eos_token_id), sampleable_vocab_(sampleable_vocab), generator_(at::make_generator<at::CPUGeneratorImpl>(params.seed)) {}

Sampler::Choice Sampler::pick(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const int64_t usable = sampleable_vocab_ >= 0 ? std::min<int64_t>(sampleable_vocab_, logits.size(0)) : logits.size(0);
  const bool penalize = params_.repetition_penalty != 1.0f && !sequence.empty();
  const bool hold_eos = num_generated < params_.min_length && eos_token_id_ >= 0 && eos_token_id_ < logits.size(0);
  const auto logprob_of = [&](int64_t token) { return at::log_softmax(logits, -1)[token].item<float>(); };
  if (params_.greedy && !penalize && !hold_eos) {  // nothing to change: the best usable id, without a copy
    if (best_token_applies(logits)) {
      const BestToken best = best_token(logits, usable);
      return Choice{static_cast<int32_t>(best.token), best.logprob};
    }
    const int64_t token = logits.narrow(0, 0, usable).argmax().item<int64_t>();
    return Choice{static_cast<int32_t>(token), logprob_of(token)};
  }
  at::Tensor x = logits.clone();
  if (penalize) {
    std::vector<int64_t> seen(sequence.begin(), sequence.end());
    at::Tensor index = at::tensor(seen, at::kLong);
    at::Tensor values = x.index_select(0, index);
    values = at::where(values.gt(0), values.div(params_.repetition_penalty), values.mul(params_.repetition_penalty));
    x.index_put_({index}, values);
  }
  if (usable < x.size(0)) x.narrow(0, usable, x.size(0) - usable).fill_(minus_inf);
  if (hold_eos) x[eos_token_id_] = minus_inf;

  int64_t token = 0;
  if (params_.greedy) {
    token = x.argmax().item<int64_t>();
  } else {
    x = x.div(params_.temperature);
    if (params_.top_k > 0 && params_.top_k < x.size(0)) {
      const float kth = std::get<0>(x.topk(params_.top_k)).min().item<float>();
      x = x.masked_fill(x.lt(kth), minus_inf);
    }
    if (params_.top_p < 1.0f) {
      // Keep the smallest set of most likely tokens whose mass reaches top_p (always at least one).
      auto [sorted, order] = x.sort(/*dim=*/-1, /*descending=*/true);
      at::Tensor mass_before = at::softmax(sorted, -1).cumsum(-1).sub(at::softmax(sorted, -1));
      at::Tensor drop = mass_before.ge(params_.top_p);
      x = x.index_put({order.masked_select(drop)}, at::tensor(minus_inf));
    }
    token = at::multinomial(at::softmax(x, -1), 1, /*replacement=*/false, generator_).item<int64_t>();
  }
  return Choice{static_cast<int32_t>(token), logprob_of(token)};
}

}  // namespace rankserve::runtime
