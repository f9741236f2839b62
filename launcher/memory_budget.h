// The KV-cache budget of one rank, from --kv-cache-gb or, on a GPU, from the device's free memory and
// --gpu-memory-utilization (as vLLM sizes its cache). Pure arithmetic; model_loading.cpp measures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/dist/devices.h"
#include "runtime/model/model_config.h"

namespace rankserve::launcher {

inline constexpr double kDefaultCpuKvCacheGb = 2.0;              // --kv-cache-gb 0 on the CPU
inline constexpr uint64_t kActivationReserveBytes = 1ULL << 30;  // a GPU's activations and workspaces, kept free

struct MemoryPlanInputs {
  std::string device;                           // "cpu" or "cuda:N", for messages
  std::optional<runtime::DeviceMemory> memory;  // the device's, measured; none on the CPU
  bool weights_loaded = false;                  // memory was measured after this rank's weights were loaded
  uint64_t weight_bytes = 0;                    // this rank's shard (an estimate before loading)
  uint64_t kv_bytes_per_token = 0;              // this rank's; 0 before loading (no tokens counted)
  double kv_cache_gb = 0;                       // --kv-cache-gb; 0: automatic
  double gpu_memory_utilization = 0.9;          // --gpu-memory-utilization, in (0, 1]
  uint64_t reserve_bytes = kActivationReserveBytes;
};

struct KvBudget {
  uint64_t kv_bytes = 0;
  int64_t kv_tokens = 0;  // kv_bytes / kv_bytes_per_token (0 when that is 0)
};

// On a GPU: what this rank may use (--gpu-memory-utilization x total, less what others hold) and
// what it needs before any KV cache (its weights and the reserve), bytes. `in.memory` must be set.
struct MemoryRoom {
  double allowed_bytes = 0;
  double needed_bytes = 0;
  double others_bytes = 0;
  double left_bytes() const { return allowed_bytes - needed_bytes; }  // for the KV cache; <= 0: the weights do not fit
};
MemoryRoom memory_room(const MemoryPlanInputs& in);

// CPU: --kv-cache-gb (default 2 GB). GPU: the memory this rank may use is utilization x total minus
// what other processes hold (total - free, less our own weights once loaded); the weights and the
// reserve come off it, and the KV cache gets the rest, or --kv-cache-gb when given. Throws
// Error(load) with the numbers (GB) when the weights (and an explicit KV budget) do not fit.
KvBudget plan_kv_budget(const MemoryPlanInputs& in);

// This rank's weight bytes for `config` split over tp_size x pp_size at stage pp_rank (what GptModel
// loads, its vocabulary's padding rows included; exact but for an fp16 shard on the CPU, which keeps its
// layer norms, biases and position embeddings in fp32): for the check before loading and for plan.
uint64_t estimate_shard_bytes(const runtime::ModelConfig& config, int tp_size, int pp_size, int pp_rank, int element_bytes);

// This rank's KV-cache bytes per token for the same split: the keys and values of its layers and heads
// (GptModel::kv_cache_bytes_per_token, from the config alone).
uint64_t estimate_kv_bytes_per_token(const runtime::ModelConfig& config, int tp_size, int pp_size, int pp_rank,
                                     int element_bytes);

}  // namespace rankserve::launcher
