// One tensor-parallel shard of a GPT-family decoder (GPT-2, OPT incl. post-LN and project_in/out)
// and its forward pass with a KV cache. Pipeline stages hold consecutive layers and pass activations on. Megatron sharding:
// column-parallel QKV and first MLP layer, row-parallel attention output and second MLP layer (all-reduce), vocabulary-parallel
// embedding and output layer. Internal to the runtime (torch). Engine thread only.
#pragma once

#include <ATen/ATen.h>

#include <span>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/model/model_config.h"
#include "runtime/model/weight_source.h"

namespace rankserve::runtime {

struct ShardSpec {
  int tp_rank = 0;
  int tp_size = 1;
  int pp_rank = 0;  // pipeline stage: layers are split into pp_size consecutive runs
  int pp_size = 1;
  // Weights, activations and KV cache (but fp16 activations on the CPU are float32: GptModel);
  // logits stay float32.
  at::ScalarType dtype = at::kFloat;
  // Where weights, KV cache, activations and logits live. CPU: collectives sum float32 on the host
  // and the CPU kernels run where they apply. A CUDA device: collectives run in place on device
  // memory in the compute dtype, and only ATen ops run. The communicators must be on this device too.
  at::Device device = at::kCPU;
};

struct LayerWeights {
  at::Tensor ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

// Keys and values of one sequence for this rank's heads: [layer] -> [max_tokens, local_heads, head_dim].
struct KvCache {
  std::vector<at::Tensor> k, v;
  int64_t length = 0;  // tokens stored
};

// One sequence's part of a batched step: its new tokens and its cache (positions continue from
// cache->length). Sequences of any lengths share a step; each keeps its own cache.
struct SequenceStep {
  std::span<const int32_t> ids;
  KvCache* cache = nullptr;
};

class GptModel {
 public:
  // Reads only this rank's slices. Throws Error(load) naming the tensor on a missing or misshapen one.
  GptModel(const ModelConfig& config, const WeightSource& source, ShardSpec shard, Communicator& tp, Communicator& pp);

  const ModelConfig& config() const { return config_; }
  at::Device device() const { return shard_.device; }
  at::ScalarType dtype() const { return shard_.dtype; }
  int padded_vocab_size() const { return padded_vocab_; }
  KvCache new_cache(int64_t max_tokens) const;

  bool is_last_stage() const { return shard_.pp_rank == shard_.pp_size - 1; }

  // Runs every sequence's new tokens through the model (one flat batch of tokens for the matrix
  // products, attention per sequence), appends to each cache, and returns the full-vocabulary logits
  // of each sequence's last token [batch.size(), vocab_size] (float32) on the last stage, an
  // undefined tensor on the others, on device(). Every rank of the model copy calls with the same
  // batch. Stage s receives its input from stage s - 1 and sends its output to s + 1 (point to point).
  at::Tensor forward(std::span<const SequenceStep> batch);

  uint64_t weight_bytes() const { return weight_bytes_; }  // this rank's tensors, the vocabulary's zero padding rows included
  uint64_t kv_cache_bytes_per_token() const;               // this rank's layers and heads

 private:
  at::Tensor embed(std::span<const SequenceStep> batch, int64_t num_tokens);
  at::Tensor attention(const LayerWeights& w, const at::Tensor& x, std::span<const SequenceStep> batch, size_t layer);
  // Attention of one sequence's new tokens (their rows of qkv) over its cache, appending to it.
  at::Tensor attend(const at::Tensor& qkv, KvCache& cache, size_t layer);
  at::Tensor mlp(const LayerWeights& w, const at::Tensor& x);
  at::Tensor all_reduce(at::Tensor x);
  at::Tensor logits(const at::Tensor& hidden);
  at::Tensor run_layers(at::Tensor x, std::span<const SequenceStep> batch);
  at::TensorOptions options(at::ScalarType type) const { return at::TensorOptions().dtype(type).device(shard_.device); }

  ModelConfig config_;
  ShardSpec shard_;
  Communicator& tp_;
  Communicator& pp_;
  int first_layer_ = 0;  // global index of this stage's first layer
  int padded_vocab_ = 0;
  int local_heads_ = 0;
  at::ScalarType activation_dtype_ = at::kFloat;  // of activations, layer norms and biases
  at::Tensor word_embeddings_;                    // [padded_vocab / tp, embed_dim], this rank's rows
  at::Tensor position_embeddings_;
  at::Tensor output_weights_;  // an untied output layer (NeMo), this rank's vocabulary rows
  at::Tensor project_in_, project_out_, ln_f_w_, ln_f_b_;
  std::vector<LayerWeights> layers_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace rankserve::runtime
