#include "runtime/engine.h"

#include <fmt/format.h>

#include "runtime/core/error.h"
#include "runtime/model/gpt_model.h"
#include "runtime/model/nemo.h"
#include "runtime/model/sampler.h"

namespace rankserve::runtime {

struct Engine::Impl {
  std::unique_ptr<WeightSource> source;
  std::unique_ptr<GptModel> model;
  Communicator* tp = nullptr;
  Communicator* pp = nullptr;
  int max_context = 0;
  int sampleable_vocab = 0;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::load(const EngineOptions& options, const ProcessGroups& groups) {
  Communicator& tp = *groups.tp;
  Communicator& pp = *groups.pp;
  auto impl = std::make_unique<Impl>();
  ModelConfig config;
  if (options.model_path.rfind("random/", 0) == 0) {
    config = random_model_config(options.model_path);
    impl->source = random_source(options.seed);
  } else if (is_nemo_path(options.model_path)) {
    config = read_nemo_config(options.model_path);
    impl->source = open_nemo_source(options.model_path, config);
  } else {
    config = read_hf_config(options.model_path);
    impl->source = open_checkpoint_source(options.model_path);
  }
  impl->tp = &tp;
  impl->pp = &pp;
  impl->max_context = options.max_context > 0 ? options.max_context : config.max_position_embeddings;
  impl->sampleable_vocab = options.sampleable_vocab > 0 ? std::min(options.sampleable_vocab, config.vocab_size) : config.vocab_size;
  impl->model = std::make_unique<GptModel>(config, *impl->source, ShardSpec{tp.rank(), tp.size(), pp.rank(), pp.size()}, tp, pp);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelConfig& Engine::config() const { return impl_->model->config(); }
uint64_t Engine::weight_bytes() const { return impl_->model->weight_bytes(); }
uint64_t Engine::bytes_read() const { return impl_->source->bytes_read(); }
uint64_t Engine::kv_cache_bytes_per_token() const { return impl_->model->kv_cache_bytes_per_token(); }
int Engine::max_context() const { return impl_->max_context; }

std::vector<Generation> Engine::generate(const std::vector<GenerationRequest>& requests, bool use_kv_cache) {
  GptModel& model = *impl_->model;
  const int64_t limit = impl_->max_context;
  struct Active {
    size_t index;
    std::vector<int32_t> sequence;  // prompt and generated tokens
    std::vector<int32_t> step;      // tokens to run next
    KvCache cache;
    int64_t capacity = 0;           // tokens the cache holds: prompt + max_new_tokens, within the context
    int max_new_tokens = 0;
    Sampler sampler;
  };
  std::vector<Active> active;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& prompt = requests[i].prompt;
    const int max_new_tokens = requests[i].max_new_tokens;
    if (prompt.empty()) throw Error(ErrorCode::usage, fmt::format("generate: prompt {} is empty", i));
    if (static_cast<int64_t>(prompt.size()) >= limit) {
      throw Error(ErrorCode::usage, fmt::format("generate: prompt {} has {} tokens; the model's context is {}", i, prompt.size(), limit));
    }
    for (int32_t id : prompt) {
      if (id < 0 || id >= model.config().vocab_size) {
        throw Error(ErrorCode::usage, fmt::format("generate: token id {} is outside the vocabulary of {}", id, model.config().vocab_size));
      }
    }
    const int64_t capacity = std::min<int64_t>(limit, static_cast<int64_t>(prompt.size()) + max_new_tokens);
    active.push_back({i, prompt, prompt, model.new_cache(capacity), capacity, max_new_tokens,
                      Sampler(requests[i].sampling, model.config().eos_token_id, impl_->sampleable_vocab)});
  }

  std::vector<Generation> out(requests.size());
  struct Choice {
    int32_t token = 0;
    float logprob = 0;
  };
  while (!active.empty()) {
    std::vector<SequenceStep> batch;
    for (Active& a : active) {
      if (!use_kv_cache) {
        a.cache.length = 0;
        a.step = a.sequence;
      }
      batch.push_back({a.step, &a.cache});
    }
    at::Tensor logits = model.forward(batch);
    // The last stage's TP rank 0 decides, so every rank continues with the same tokens whatever the rounding.
    std::vector<Choice> choices(active.size());
    if (model.is_last_stage()) {
      for (size_t b = 0; b < active.size(); ++b) {
        Active& a = active[b];
        const auto choice = a.sampler.pick(logits[static_cast<int64_t>(b)], a.sequence,
                                           static_cast<int>(out[a.index].ids.size()));
        choices[b] = {choice.token, choice.logprob};
      }
    }
    auto bytes = std::as_writable_bytes(std::span(choices));
    impl_->tp->broadcast(bytes, 0);
    impl_->pp->broadcast(bytes, impl_->pp->size() - 1);
    std::vector<Active> still;
    for (size_t b = 0; b < active.size(); ++b) {
      Active& a = active[b];
      Generation& g = out[a.index];
      g.ids.push_back(choices[b].token);
      g.logprobs.push_back(choices[b].logprob);
      a.sequence.push_back(choices[b].token);
      a.step = {choices[b].token};
      const bool done = choices[b].token == model.config().eos_token_id || static_cast<int>(g.ids.size()) >= a.max_new_tokens ||
                        static_cast<int64_t>(a.sequence.size()) >= a.capacity;
      if (!done) still.push_back(std::move(a));
    }
    active = std::move(still);
  }
  return out;
}

}  // namespace rankserve::runtime
