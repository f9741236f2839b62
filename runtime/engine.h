// The model engine of one rank: loads this rank's shard and generates. Torch-free facade (pimpl).
// Engine thread only. Every rank of a model copy calls the same methods in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/model/model_config.h"
#include "runtime/sampling_params.h"

namespace rankserve::runtime {

// The type of weights, activations and the KV cache (logits and sampling stay float32). automatic:
// fp32 on the CPU; on a CUDA device the checkpoint's half type (fp16 for a float16 checkpoint, bf16
// otherwise: bfloat16 and float32 checkpoints, random weights).
enum class ComputeDtype { fp32, bf16, fp16, automatic };

struct EngineOptions {
  std::string model_path;    // a Hugging Face folder (config.json + safetensors), or random/<size>
  uint64_t seed = 0;         // random/<size> weights
  int max_context = 0;       // tokens per sequence; 0: the model's max_position_embeddings
  int sampleable_vocab = 0;  // the tokenizer's size: ids at or past it (padded rows) are never picked; 0: all
  int eos_token_id = -1;     // the tokenizer's EOS when it differs from the model's (random/<size>); -1: the model's
  ComputeDtype dtype = ComputeDtype::fp32;  // checkpoint tensors of any type are converted to it on load
  int cpu_threads = 0;                      // the process's intra-op (compute) threads, set by load; 0: libtorch's default
  // "cpu", or "cuda:N": the rank's device (ProcessGroups::device). A CUDA device needs a libtorch
  // with CUDA; with a CPU-only one the engine warns and computes on the CPU.
  std::string device = "cpu";
};

// One sequence for the engine: a join in a step plan (serving) or one of generate()'s sequences.
// `id` is unique among the engine's sequences.
struct SequenceSpec {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  int max_tokens = 16;  // the KV cache holds prompt + max_tokens, within max_context()
  SamplingParams sampling;
};

// TokenChoice::token values that are not tokens.
constexpr int32_t kNoToken = -1;         // the sequence is still reading its prompt (chunked prefill)
constexpr int32_t kSamplingFailed = -2;  // no token could be drawn (non-finite logits or unusable
                                         // sampling values): the caller ends the sequence with an error

// The token a step chose for one sequence, in the order the sequences joined.
struct TokenChoice {
  uint64_t id = 0;
  int32_t token = kNoToken;  // a token id, kNoToken or kSamplingFailed
  float logprob = 0;
};

struct Generation {
  std::vector<int32_t> ids;     // generated tokens only
  std::vector<float> logprobs;  // log-probability of each generated token
};

// The model's architecture as Engine::load will see it (with eos_token_id applied), read from the
// checkpoint's config only: cheap, no weights. Throws Error(load) or Error(usage) like load().
ModelConfig read_model_config(const EngineOptions& options);

// Where a rank whose device is `device` ("cpu" or "cuda:N") computes: `device`, or "cpu" when this
// libtorch has no CUDA. Throws Error(usage) for a malformed device.
std::string compute_device_of(const std::string& device);

// `dtype` with automatic resolved for `compute_device` and the checkpoint (see ComputeDtype).
ComputeDtype resolve_dtype(ComputeDtype dtype, const std::string& compute_device, const ModelConfig& config);

// Bytes of one element of `dtype` (not automatic).
int element_bytes(ComputeDtype dtype);

class Engine {
 public:
  // Loads this rank's TP shard. Throws Error(load) naming file and tensor, Error(usage) on a bad layout.
  // Uses the TP and PP groups of `groups`; each DP copy loads its own.
  static std::unique_ptr<Engine> load(const EngineOptions& options, const ProcessGroups& groups);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine();

  const ModelConfig& config() const;
  uint64_t weight_bytes() const;              // this rank's shard
  uint64_t bytes_read() const;                // from the checkpoint files
  uint64_t kv_cache_bytes_per_token() const;  // this rank's share of one token's keys and values
  int max_context() const;                    // tokens per sequence
  std::string device() const;                 // where this rank computes: "cpu" or "cuda:N"
  std::string dtype() const;                  // the compute dtype: "fp32", "bf16" or "fp16"

  // Continuous batching: sequences join and leave between steps. Every rank of the model copy calls
  // these in the same order with the same arguments (the step plan). add_sequence allocates the
  // sequence's KV cache and takes `spec`'s prompt as the sequence's first tokens; remove_sequence
  // frees it (a no-op for an unknown id). add_sequence takes a
  // prompt its caller validated (the scheduler's submit): a prompt that is empty, holds an id outside
  // the vocabulary or leaves no room in the context breaks an invariant (RANKSERVE_CHECK, Error(runtime)).
  void add_sequence(SequenceSpec spec);
  void remove_sequence(uint64_t id);
  size_t num_sequences() const;
  int64_t cached_tokens() const;  // KV-cache capacity held by the running sequences, in tokens

  // One step for every running sequence: sequences that are generating run their last token;
  // sequences still reading their prompt run up to `prompt_token_budget` prompt tokens between them
  // (in the order they joined; <= 0: no limit) and yield a token once their prompt is read.
  // Collective over the model copy; every rank returns the same choices (the last stage's TP rank 0
  // samples). The engine never ends a sequence by itself: the caller removes it (EOS, length, stop,
  // kSamplingFailed; a failed sequence does not advance).
  std::vector<TokenChoice> step(int prompt_token_budget = 0);

  // Generates up to each sequence's max_tokens after its prompt, stopping at EOS; the results are in
  // the order of `sequences`, whose ids must be distinct (their positions will do). Sequences of
  // different lengths run as one batch; a sequence leaves the batch when it is done. Collective over
  // the model copy (TP and PP groups); every rank returns the same results. `use_kv_cache` false
  // recomputes every sequence in full at each step (for checking the cache). Throws Error(usage)
  // naming the prompt when a prompt is empty, holds an id outside the vocabulary or leaves no room in
  // the context (before any collective), Error(runtime) naming it when no token can be drawn for it.
  std::vector<Generation> generate(const std::vector<SequenceSpec>& sequences, bool use_kv_cache);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
