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

namespace rankserve::runtime {

struct EngineOptions {
  std::string model_path;  // a Hugging Face folder (config.json + safetensors), or random/<size>
  uint64_t seed = 0;       // random/<size> weights
  int max_context = 0;     // tokens per sequence; 0: the model's max_position_embeddings
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

  // Greedy decoding of up to `max_new_tokens` after each prompt, stopping at EOS. Collective over the
  // model copy (TP and PP groups); every rank returns the same result. `use_kv_cache` false recomputes the whole sequence every step (for checking the cache).
  // Prompts of different lengths run as one batch; a sequence leaves the batch when it is done.
  std::vector<Generation> generate_greedy(const std::vector<std::vector<int32_t>>& prompts, int max_new_tokens,
                                          bool use_kv_cache);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
