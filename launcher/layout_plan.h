// `rankserve plan`'s arithmetic: the parallel layout (TP within a node, PP across nodes, DP from the
// rest) a model's config needs on nodes x GPUs of a given memory, and each stage's weights and KV cache
// per rank, computed with the functions serve sizes its memory with (launcher/memory_budget.h). Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "launcher/memory_budget.h"
#include "runtime/model/model_config.h"

namespace rankserve::launcher {

struct PlanRequest {
  runtime::ModelConfig config;
  int element_bytes = 2;  // of the compute dtype (bf16 on GPUs for --dtype auto)
  int num_nodes = 1;
  int gpus_per_node = 1;
  uint64_t gpu_memory_bytes = 0;  // each GPU's total memory; nothing else is assumed to hold any
  double gpu_memory_utilization = 0.9;
  double kv_cache_gb = 0;  // --kv-cache-gb: the KV budget per rank in GB; 0: what the memory leaves
  int context = 0;         // tokens per sequence; 0: the model's max_position_embeddings
  int batch = 1;           // sequences of `context` tokens each model copy must hold at once
  int tp_size = 0;         // 0: chosen
  int pp_size = 0;         // 0: chosen
};

// One pipeline stage's rank (every rank of a stage holds the same amount), bytes.
struct StagePlan {
  runtime::StageLayers layers;
  uint64_t weight_bytes = 0;        // estimate_shard_bytes
  uint64_t kv_bytes_per_token = 0;  // estimate_kv_bytes_per_token
  // What the rank needs for `batch` sequences: weights + the activation reserve + their KV cache
  // (or --kv-cache-gb, when larger).
  uint64_t needed_bytes = 0;
  KvBudget kv;  // plan_kv_budget's, when the weights fit (else 0)
};

struct LayoutPlan {
  int tp_size = 1;
  int pp_size = 1;
  int dp_size = 1;
  int context = 0;           // the request's, or the model's
  double allowed_bytes = 0;  // what each GPU may use: --gpu-memory-utilization x its memory
  std::vector<StagePlan> stages;
  bool fits = false;      // every stage holds its weights and `batch` sequences of `context`
  int64_t kv_tokens = 0;  // the smallest stage's KV tokens: a model copy's budget, as serve's
  int64_t sequences = 0;  // kv_tokens / context, per model copy
  // When it does not fit (for the largest layout the nodes allow, or the one asked for):
  uint64_t shortfall_bytes = 0;      // the worst stage's needed_bytes - allowed_bytes
  uint64_t gpu_memory_needed = 0;    // the smallest GPU memory with which this layout fits, bytes
  int nodes_needed = 0;              // the fewest nodes of gpus_per_node on which a layout fits (0: none found)
  int gpus_per_node_needed = 0;      // the fewest GPUs per node (up to 8) with which num_nodes fit (0: none)
  int nodes_needed_of_max_gpus = 0;  // when no GPU count up to 8 fits num_nodes: the fewest nodes of 8 GPUs that fit
};

// The most GPUs per node a suggestion names (the usual 8-GPU server).
inline constexpr int kMaxSuggestedGpusPerNode = 8;

// With --tp and --pp given: that layout, checked. Otherwise the smallest model copy that fits (most
// DP copies): tp x pp ascending, then pp ascending, over tp = a power of two dividing gpus_per_node
// (and the heads and the ffn size) and pp up to the layers, tp x pp dividing nodes x GPUs. So TP
// grows within a node first and PP spans nodes only when one node cannot hold a copy.
// Throws Error(usage) when --tp/--pp cannot split the model (runtime::check_shardable) and
// Error(topology) when tp x pp does not divide the world, in serve's words.
LayoutPlan plan_layout(const PlanRequest& request);

// "80GB" (1e9 bytes each), "80GiB" (2^30), also MB/MiB and TB/TiB, a decimal number before the unit;
// nullopt for anything else.
std::optional<uint64_t> parse_byte_size(const std::string& text);

}  // namespace rankserve::launcher
