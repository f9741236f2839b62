#include "runtime/engine.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "runtime/model/cpu_kernels.h"
#include "runtime/model/gpt_model.h"
#include "runtime/model/nemo.h"
#include "runtime/model/sampler.h"

namespace rankserve::runtime {

// A running sequence: its tokens, what it runs next, and its cache.
struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // prompt and generated tokens
  size_t next = 0;              // tokens[next..] have not been run yet
  KvCache cache;
  int64_t capacity = 0;  // tokens the cache holds: prompt + max_tokens, within the context
  int num_generated = 0;
  Sampler sampler;
};

struct Engine::Impl {
  std::unique_ptr<WeightSource> source;
  std::unique_ptr<GptModel> model;
  Communicator* tp = nullptr;
  Communicator* pp = nullptr;
  int max_context = 0;
  int sampleable_vocab = 0;
  std::vector<Sequence> running;  // in the order they joined
  bool recompute = false;         // generate(use_kv_cache = false): run every sequence in full each step
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

ModelConfig read_model_config(const EngineOptions& options) {
  ModelConfig config;
  if (options.model_path.rfind("random/", 0) == 0) config = random_model_config(options.model_path);
  else if (is_nemo_path(options.model_path)) config = read_nemo_config(options.model_path);
  else config = read_hf_config(options.model_path);
  if (options.eos_token_id >= 0) config.eos_token_id = options.eos_token_id;
  return config;
}

namespace {

at::ScalarType scalar_type_of(ComputeDtype dtype) {
  RANKSERVE_CHECK(dtype != ComputeDtype::automatic, "a resolved dtype");
  return dtype == ComputeDtype::bf16 ? at::kBFloat16 : dtype == ComputeDtype::fp16 ? at::kHalf : at::kFloat;
}

}  // namespace

// A CUDA device with a libtorch built without CUDA (Debian's) computes on the CPU, as rankserve did
// before it ran on devices; the collectives still use NCCL (through host staging).
std::string compute_device_of(const std::string& device) {
  at::Device parsed = at::kCPU;
  try {
    parsed = at::Device(device);
  } catch (const std::exception&) {
    throw Error(ErrorCode::usage, fmt::format("runtime: device '{}' is not \"cpu\" or \"cuda:N\"", device));
  }
  if (parsed.is_cuda() && !at::globalContext().hasCUDA()) return "cpu";
  return parsed.str();
}

ComputeDtype resolve_dtype(ComputeDtype dtype, const std::string& compute_device, const ModelConfig& config) {
  if (dtype != ComputeDtype::automatic) return dtype;
  if (compute_device == "cpu") return ComputeDtype::fp32;
  return config.torch_dtype == "float16" ? ComputeDtype::fp16 : ComputeDtype::bf16;
}

int element_bytes(ComputeDtype dtype) { return static_cast<int>(at::elementSize(scalar_type_of(dtype))); }

std::unique_ptr<Engine> Engine::load(const EngineOptions& options, const ProcessGroups& groups) {
  Communicator& tp = *groups.tp;
  Communicator& pp = *groups.pp;
  auto impl = std::make_unique<Impl>();
  ModelConfig config = read_model_config(options);
  if (options.model_path.rfind("random/", 0) == 0) {
    impl->source = random_source(options.seed);
  } else if (is_nemo_path(options.model_path)) {
    impl->source = open_nemo_source(options.model_path, config);
  } else {
    impl->source = open_checkpoint_source(options.model_path);
  }
  if (options.cpu_threads > 0) at::set_num_threads(options.cpu_threads);
  log::info("compute threads per rank: {}", at::get_num_threads());
  log::info("cpu kernels: {}; BLAS: {}", cpu_kernels_chosen(), blas_threads_per_call());
  impl->tp = &tp;
  impl->pp = &pp;
  impl->max_context = options.max_context > 0 ? options.max_context : config.max_position_embeddings;
  impl->sampleable_vocab =
      options.sampleable_vocab > 0 ? std::min(options.sampleable_vocab, config.vocab_size) : config.vocab_size;
  const std::string device_name = compute_device_of(options.device);
  if (device_name != options.device) {
    log::warn(
        "runtime: this rank's device is {} but this libtorch has no CUDA; computing on the CPU (build against "
        "PyTorch's CUDA libtorch to compute on the GPU, docs/gpu.md)",
        options.device);
  }
  const at::Device device(device_name);
  const at::ScalarType dtype = scalar_type_of(resolve_dtype(options.dtype, device_name, config));
  impl->model = std::make_unique<GptModel>(config, *impl->source,
                                           ShardSpec{tp.rank(), tp.size(), pp.rank(), pp.size(), dtype, device}, tp, pp);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelConfig& Engine::config() const { return impl_->model->config(); }
uint64_t Engine::weight_bytes() const { return impl_->model->weight_bytes(); }
uint64_t Engine::bytes_read() const { return impl_->source->bytes_read(); }
uint64_t Engine::kv_cache_bytes_per_token() const { return impl_->model->kv_cache_bytes_per_token(); }
int Engine::max_context() const { return impl_->max_context; }
std::string Engine::device() const { return impl_->model->device().str(); }
std::string Engine::dtype() const {
  const at::ScalarType t = impl_->model->dtype();
  return t == at::kBFloat16 ? "bf16" : t == at::kHalf ? "fp16" : "fp32";
}

namespace {

// Why `prompt` cannot run in a context of `max_context` tokens over `vocab_size` ids; "" when it can.
std::string prompt_problem(std::span<const int32_t> prompt, int64_t max_context, int vocab_size) {
  if (prompt.empty()) return "the prompt is empty";
  if (static_cast<int64_t>(prompt.size()) >= max_context) {
    return fmt::format("the prompt has {} tokens; the model's context is {} tokens and at least one must be left to generate",
                       prompt.size(), max_context);
  }
  for (int32_t id : prompt) {
    if (id < 0 || id >= vocab_size) return fmt::format("token id {} is outside the vocabulary of {}", id, vocab_size);
  }
  return "";
}

}  // namespace

void Engine::add_sequence(SequenceSpec spec) {
  // Not a user-facing check: the scheduler's submit refused such prompts before queueing them, and
  // generate() before adding them.
  const std::string problem = prompt_problem(spec.prompt, impl_->max_context, impl_->model->config().vocab_size);
  RANKSERVE_CHECK(problem.empty(), fmt::format("sequence {} was admitted unchecked: {}", spec.id, problem));
  RANKSERVE_CHECK(spec.max_tokens >= 1, "a sequence generates at least one token");
  for (const Sequence& s : impl_->running) RANKSERVE_CHECK(s.id != spec.id, fmt::format("sequence {} joined twice", spec.id));
  GptModel& model = *impl_->model;
  const int64_t capacity = std::min<int64_t>(impl_->max_context, static_cast<int64_t>(spec.prompt.size()) + spec.max_tokens);
  impl_->running.push_back(Sequence{spec.id, std::move(spec.prompt), 0, model.new_cache(capacity), capacity, 0,
                                    Sampler(spec.sampling, model.config().eos_token_id, impl_->sampleable_vocab)});
}

void Engine::remove_sequence(uint64_t id) {
  std::erase_if(impl_->running, [id](const Sequence& s) { return s.id == id; });
}

size_t Engine::num_sequences() const { return impl_->running.size(); }

int64_t Engine::cached_tokens() const {
  int64_t total = 0;
  for (const Sequence& s : impl_->running) total += s.capacity;
  return total;
}

std::vector<TokenChoice> Engine::step(int prompt_token_budget) {
  GptModel& model = *impl_->model;
  auto& running = impl_->running;
  std::vector<TokenChoice> choices(running.size());
  if (running.empty()) return choices;
  // What each sequence runs: generating ones their last token, prompt readers a chunk within the budget.
  int64_t budget = prompt_token_budget > 0 ? prompt_token_budget : std::numeric_limits<int64_t>::max();
  std::vector<SequenceStep> batch;
  std::vector<size_t> in_batch;  // index into running, per batch entry
  std::vector<bool> yields(running.size(), false);
  for (size_t i = 0; i < running.size(); ++i) {
    Sequence& s = running[i];
    if (impl_->recompute) {
      s.cache.length = 0;
      s.next = 0;
    }
    const int64_t pending = static_cast<int64_t>(s.tokens.size() - s.next);
    RANKSERVE_CHECK(pending >= 1, fmt::format("sequence {} has nothing to run", s.id));
    int64_t take = pending;
    if (s.num_generated == 0 && !impl_->recompute) {
      take = std::min(pending, budget);  // a prompt reader
      if (take <= 0) continue;
      budget -= take;
    }
    batch.push_back({std::span<const int32_t>(s.tokens).subspan(s.next, static_cast<size_t>(take)), &s.cache});
    in_batch.push_back(i);
    yields[i] = take == pending;
  }
  at::Tensor logits = batch.empty() ? at::Tensor() : model.forward(batch);
  for (size_t b = 0; b < in_batch.size(); ++b) running[in_batch[b]].next += batch[b].ids.size();
  // The last stage's TP rank 0 decides, so every rank continues with the same tokens whatever the rounding.
  struct Choice {
    int32_t token = -1;
    float logprob = 0;
  };
  std::vector<Choice> picked(running.size());
  if (model.is_last_stage()) {
    for (size_t b = 0; b < in_batch.size(); ++b) {
      const size_t i = in_batch[b];
      if (!yields[i]) continue;
      Sequence& s = running[i];
      try {
        const auto choice = s.sampler.pick(logits[static_cast<int64_t>(b)], s.tokens, s.num_generated);
        picked[i] = {choice.token, choice.logprob};
      } catch (const std::exception& e) {  // this sequence fails; the others and every rank go on
        log::warn("sequence {}: {}", s.id, e.what());
        picked[i] = {kSamplingFailed, 0};
      }
    }
  }
  auto bytes = std::as_writable_bytes(std::span(picked));
  impl_->tp->broadcast(bytes, 0);
  impl_->pp->broadcast(bytes, impl_->pp->size() - 1);
  for (size_t i = 0; i < running.size(); ++i) {
    Sequence& s = running[i];
    choices[i] = {s.id, picked[i].token, picked[i].logprob};
    if (picked[i].token < 0) continue;
    s.tokens.push_back(picked[i].token);
    ++s.num_generated;
  }
  return choices;
}

std::vector<Generation> Engine::generate(const std::vector<SequenceSpec>& sequences, bool use_kv_cache) {
  RANKSERVE_CHECK(impl_->running.empty(), "generate() runs alone, not beside served sequences");
  std::unordered_map<uint64_t, size_t> position;  // sequence id -> index in `sequences` and the results
  for (size_t i = 0; i < sequences.size(); ++i) {
    const std::string problem = prompt_problem(sequences[i].prompt, impl_->max_context, impl_->model->config().vocab_size);
    if (!problem.empty()) throw Error(ErrorCode::usage, fmt::format("generate: {} (prompt {})", problem, i));
    RANKSERVE_CHECK(position.emplace(sequences[i].id, i).second,
                    fmt::format("generate: sequence id {} is given twice", sequences[i].id));
  }
  impl_->recompute = !use_kv_cache;
  // The one copy of each prompt: the engine's tokens grow with the generation, the caller keeps its own.
  for (const SequenceSpec& spec : sequences) add_sequence(spec);
  std::vector<Generation> out(sequences.size());
  const int eos = impl_->model->config().eos_token_id;
  while (!impl_->running.empty()) {
    std::vector<uint64_t> done;
    for (const TokenChoice& c : step()) {
      const size_t i = position.at(c.id);
      if (c.token == kSamplingFailed) {
        impl_->running.clear();
        impl_->recompute = false;
        throw Error(ErrorCode::runtime,
                    fmt::format("generate: no next token could be drawn for prompt {} (see the sampling warning)", i));
      }
      Generation& g = out[i];
      g.ids.push_back(c.token);
      g.logprobs.push_back(c.logprob);
      const Sequence& s =
          *std::find_if(impl_->running.begin(), impl_->running.end(), [&](const Sequence& q) { return q.id == c.id; });
      if (c.token == eos || static_cast<int>(g.ids.size()) >= sequences[i].max_tokens ||
          static_cast<int64_t>(s.tokens.size()) >= s.capacity) {
        done.push_back(c.id);
      }
    }
    for (uint64_t id : done) remove_sequence(id);
  }
  impl_->recompute = false;
  return out;
}

}  // namespace rankserve::runtime
