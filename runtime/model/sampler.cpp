#include "runtime/model/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "runtime/model/cpu_kernels.h"

namespace rankserve::runtime {

namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

[[noreturn]] void refuse(const std::string& what) { throw Error(ErrorCode::bad_request, fmt::format("sampling: {}", what)); }

// The parameters the arithmetic below relies on; the protocol decoders refuse these with the field's
// name first, so this only guards against a caller that did not.
void check_params(const SamplingParams& p) {
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0)) {
    refuse(fmt::format("repetition_penalty is {}; expected a finite float32 > 0", p.repetition_penalty));
  }
  if (p.greedy) return;
  if (!(std::isfinite(p.temperature) && p.temperature > 0))
    refuse(fmt::format("temperature is {}; expected a finite float32 > 0", p.temperature));
  if (!(p.top_p > 0 && p.top_p <= 1)) refuse(fmt::format("top_p is {}; expected a float32 in (0, 1]", p.top_p));
}

[[noreturn]] void refuse_logits() {
  throw Error(ErrorCode::runtime,
              "sampling: the model's logits hold NaN or infinity (a broken checkpoint or an overflow in the compute dtype)");
}

// NaN and +inf; a -inf logit only rules its token out.
void check_logits(const at::Tensor& logits) {
  if (!logits.lt(std::numeric_limits<float>::infinity()).all().item<bool>()) refuse_logits();
}

// The log-probability reported with a token is finite, or the logits were not usable.
float checked_logprob(float logprob) {
  if (!std::isfinite(logprob)) refuse_logits();
  return logprob;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, int eos_token_id, int sampleable_vocab)
    : params_(params),
      eos_token_id_(eos_token_id),
      sampleable_vocab_(sampleable_vocab),
      generator_(at::make_generator<at::CPUGeneratorImpl>(params.seed)) {}

Sampler::Choice Sampler::pick(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated) {
  if (!logits.is_cpu()) return pick_with_tensor_ops(logits, sequence, num_generated);
  check_params(params_);
  const int64_t usable = sampleable_vocab_ >= 0 ? std::min<int64_t>(sampleable_vocab_, logits.size(0)) : logits.size(0);
  const bool penalize = params_.repetition_penalty != 1.0f && !sequence.empty();
  const bool hold_eos = num_generated < params_.min_tokens && eos_token_id_ >= 0 && eos_token_id_ < logits.size(0);
  const auto logprob_of = [&](int64_t token) { return checked_logprob(at::log_softmax(logits, -1)[token].item<float>()); };
  if (params_.greedy && !penalize && !hold_eos) {  // nothing to change: the best usable id, without a copy
    if (best_token_applies(logits)) {
      const BestToken best = best_token(logits, usable);
      return Choice{static_cast<int32_t>(best.token), checked_logprob(best.logprob)};  // its normalizer saw every logit
    }
    check_logits(logits);
    const int64_t token = logits.narrow(0, 0, usable).argmax().item<int64_t>();
    return Choice{static_cast<int32_t>(token), logprob_of(token)};
  }
  check_logits(logits);
  at::Tensor x = logits.clone();
  if (penalize) {
    std::vector<int64_t> seen(sequence.begin(), sequence.end());
    at::Tensor index = at::tensor(seen, at::kLong);
    at::Tensor values = x.index_select(0, index);
    values = at::where(values.gt(0), values.div(params_.repetition_penalty), values.mul(params_.repetition_penalty));
    x.index_put_({index}, values);
    // A penalty near 0 or very large overflows float32; the order of the logits is what matters.
    x.clamp_(std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max());
  }
  if (usable < x.size(0)) x.narrow(0, usable, x.size(0) - usable).fill_(kMinusInf);
  if (hold_eos) x[eos_token_id_] = kMinusInf;

  int64_t token = 0;
  if (params_.greedy) {
    token = x.argmax().item<int64_t>();
  } else {
    // Shifted so that the best logit is 0 before the temperature divides: every other logit ends up
    // in [-inf, 0] whatever the temperature, and the softmax below always has a 1 in its sum.
    const float best = x.max().item<float>();
    if (best == kMinusInf) throw Error(ErrorCode::bad_request, "sampling: no token is left to draw (every id is excluded)");
    x = x.sub(best).div(params_.temperature);
    if (params_.top_k > 0 && params_.top_k < x.size(0)) {
      const float kth = std::get<0>(x.topk(params_.top_k)).min().item<float>();
      x = x.masked_fill(x.lt(kth), kMinusInf);
    }
    if (params_.top_p < 1.0f) {
      // Keep the smallest set of most likely tokens whose mass reaches top_p (always at least one).
      auto [sorted, order] = x.sort(/*dim=*/-1, /*descending=*/true);
      const at::Tensor probs = at::softmax(sorted, -1);
      at::Tensor drop = probs.cumsum(-1).sub(probs).ge(params_.top_p);
      drop[0] = false;
      x = x.index_put({order.masked_select(drop)}, at::tensor(kMinusInf));
    }
    token = at::multinomial(at::softmax(x, -1), 1, /*replacement=*/false, generator_).item<int64_t>();
  }
  return Choice{static_cast<int32_t>(token), logprob_of(token)};
}

at::Generator& Sampler::generator_for(at::Device device) {
  if (device.is_cpu()) return generator_;
  if (!device_generator_.defined()) {
    // A copy of the device's default generator (through ATen's hooks: no CUDA library call here), reseeded.
    device_generator_ = at::globalContext().defaultGenerator(device).clone();
    device_generator_.set_current_seed(params_.seed);
  }
  return device_generator_;
}

Sampler::Choice Sampler::pick_with_tensor_ops(const at::Tensor& logits, std::span<const int32_t> sequence, int num_generated) {
  check_params(params_);
  const int64_t vocab = logits.size(0);
  const int64_t usable = sampleable_vocab_ >= 0 ? std::min<int64_t>(sampleable_vocab_, vocab) : vocab;
  const bool penalize = params_.repetition_penalty != 1.0f && !sequence.empty();
  const bool hold_eos = num_generated < params_.min_tokens && eos_token_id_ >= 0 && eos_token_id_ < vocab;
  // Every decision stays on the device; the flags travel with the token.
  const at::Tensor unusable_logits = logits.lt(std::numeric_limits<float>::infinity()).all().logical_not();  // NaN, +inf
  at::Tensor nothing_left = at::zeros({}, logits.options().dtype(at::kBool));
  at::Tensor x = logits.clone();
  if (penalize) {
    std::vector<int64_t> seen(sequence.begin(), sequence.end());
    const at::Tensor index = at::tensor(seen, at::TensorOptions().dtype(at::kLong).device(logits.device()));
    at::Tensor values = x.index_select(0, index);
    values = at::where(values.gt(0), values.div(params_.repetition_penalty), values.mul(params_.repetition_penalty));
    x.index_put_({index}, values);
    x.clamp_(std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max());
  }
  if (usable < vocab) x.narrow(0, usable, vocab - usable).fill_(kMinusInf);
  if (hold_eos) x.select(0, eos_token_id_).fill_(kMinusInf);
  at::Tensor token;
  if (params_.greedy) {
    token = x.argmax();
  } else {
    const at::Tensor best = x.max();
    nothing_left = best.eq(kMinusInf);
    // Unusable logits draw from a harmless stand-in (a device kernel must not see NaN); refused below.
    x = at::where(unusable_logits.logical_or(nothing_left), at::zeros_like(x), x.sub(best).div(params_.temperature));
    if (params_.top_k > 0 && params_.top_k < vocab) {
      const at::Tensor kth = std::get<0>(x.topk(params_.top_k)).min();
      x = x.masked_fill(x.lt(kth), kMinusInf);
    }
    if (params_.top_p < 1.0f) {  // the smallest set of most likely tokens whose mass reaches top_p
      auto [sorted, order] = x.sort(/*dim=*/-1, /*descending=*/true);
      const at::Tensor probs = at::softmax(sorted, -1);
      at::Tensor drop = probs.cumsum(-1).sub(probs).ge(params_.top_p);
      drop.select(0, 0).fill_(false);
      x = x.scatter(0, order, sorted.masked_fill(drop, kMinusInf));
    }
    const at::Tensor probs = at::softmax(x, -1);
    // Exp(1) noise kept above 0: a zero would turn an excluded token's 0 / 0 into a NaN that argmax picks.
    const at::Tensor noise =
        at::empty_like(probs).exponential_(1.0, generator_for(logits.device())).clamp_min_(std::numeric_limits<float>::min());
    token = probs.div(noise).argmax();
  }
  const at::Tensor logprob = at::log_softmax(logits, -1).gather(0, token.reshape({1})).squeeze(0);
  const at::Tensor host =
      at::stack({token.to(at::kDouble), logprob.to(at::kDouble), unusable_logits.to(at::kDouble), nothing_left.to(at::kDouble)})
          .to(at::kCPU);
  const double* h = host.data_ptr<double>();
  if (h[2] != 0) refuse_logits();
  if (h[3] != 0) throw Error(ErrorCode::bad_request, "sampling: no token is left to draw (every id is excluded)");
  return Choice{static_cast<int32_t>(h[0]), checked_logprob(static_cast<float>(h[1]))};
}

}  // namespace rankserve::runtime
