#include "runtime/engine.h"

#include <fmt/format.h>

#include "runtime/core/error.h"
#include "runtime/model/gpt_model.h"

namespace rankserve::runtime {

struct Engine::Impl {
  std::unique_ptr<WeightSource> source;
  std::unique_ptr<GptModel> model;
  Communicator* tp = nullptr;
  Communicator* pp = nullptr;
  int max_context = 0;
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
  } else {
    config = read_hf_config(options.model_path);
    impl->source = open_safetensors_source(options.model_path);
  }
  impl->tp = &tp;
  impl->pp = &pp;
  impl->max_context = options.max_context > 0 ? options.max_context : config.max_position_embeddings;
  impl->model = std::make_unique<GptModel>(config, *impl->source, ShardSpec{tp.rank(), tp.size(), pp.rank(), pp.size()}, tp, pp);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelConfig& Engine::config() const { return impl_->model->config(); }
uint64_t Engine::weight_bytes() const { return impl_->model->weight_bytes(); }
uint64_t Engine::bytes_read() const { return impl_->source->bytes_read(); }

Generation Engine::generate_greedy(std::span<const int32_t> prompt, int max_new_tokens, bool use_kv_cache) {
  GptModel& model = *impl_->model;
  const int64_t limit = impl_->max_context;
  if (prompt.empty()) throw Error(ErrorCode::usage, "generate: the prompt is empty");
  if (static_cast<int64_t>(prompt.size()) >= limit) {
    throw Error(ErrorCode::usage, fmt::format("generate: the prompt has {} tokens; the model's context is {}", prompt.size(), limit));
  }
  for (int32_t id : prompt) {
    if (id < 0 || id >= model.config().vocab_size) {
      throw Error(ErrorCode::usage, fmt::format("generate: token id {} is outside the vocabulary of {}", id, model.config().vocab_size));
    }
  }
  Generation out;
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());
  KvCache cache = model.new_cache(limit);
  std::vector<int32_t> step(prompt.begin(), prompt.end());
  while (static_cast<int>(out.ids.size()) < max_new_tokens && static_cast<int64_t>(sequence.size()) < limit) {
    if (!use_kv_cache) {
      cache = model.new_cache(limit);
      step = sequence;
    }
    at::Tensor logits = model.forward(step, cache);
    // The last stage's TP rank 0 decides, so every rank continues with the same token whatever the rounding.
    struct {
      int32_t token = 0;
      float logprob = 0;
    } choice;
    if (model.is_last_stage()) {
      at::Tensor logprobs = at::log_softmax(logits.select(0, static_cast<int64_t>(step.size()) - 1), -1);
      choice.token = static_cast<int32_t>(logprobs.argmax().item<int64_t>());
      choice.logprob = logprobs[choice.token].item<float>();
    }
    auto bytes = std::as_writable_bytes(std::span(&choice, 1));
    impl_->tp->broadcast(bytes, 0);
    impl_->pp->broadcast(bytes, impl_->pp->size() - 1);
    const int32_t token = choice.token;
    out.ids.push_back(token);
    out.logprobs.push_back(choice.logprob);
    sequence.push_back(token);
    step = {token};
    if (token == model.config().eos_token_id) break;
  }
  return out;
}

}  // namespace rankserve::runtime
