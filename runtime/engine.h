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

struct EngineOptions {
  std::string model_path;  // a Hugging Face folder (config.json + safetensors), or random/<size>
  uint64_t seed = 0;       // random/<size> weights
  int max_context = 0;     // tokens per sequence; 0: the model's max_position_embeddings
  int sampleable_vocab = 0;  // the tokenizer's size: ids at or past it (padded rows) are never picked; 0: all
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 16;
  SamplingParams sampling;
};

struct Generation {
  std::vector<int32_t> ids;      // generated tokens only
  std::vector<float> logprobs;   // log-probability of each generated token
};

class Engine {
 public:
  // Loads this rank's TP shard. Throws Error(load) naming file and tensor, Error(usage) on a bad layout.
  // Uses the TP and PP groups of `groups`; each DP copy loads its own.
  static std::unique_ptr<Engine> load(const EngineOptions& options, const ProcessGroups& groups);
  ~Engine();

  const ModelConfig& config() const;
  uint64_t weight_bytes() const;   // this rank's shard
  uint64_t bytes_read() const;     // from the checkpoint files
  uint64_t kv_cache_bytes_per_token() const;  // this rank's share of one token's keys and values
  int max_context() const;         // tokens per sequence

  // Generates up to each request's max_new_tokens after its prompt, stopping at EOS. Requests of
  // different lengths run as one batch; a sequence leaves the batch when it is done. Collective over
  // the model copy (TP and PP groups); every rank returns the same results. `use_kv_cache` false
  // recomputes every sequence in full at each step (for checking the cache).
  std::vector<Generation> generate(const std::vector<GenerationRequest>& requests, bool use_kv_cache);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
