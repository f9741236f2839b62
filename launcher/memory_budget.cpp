#include "launcher/memory_budget.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace rankserve::launcher {
namespace {

double gb(uint64_t bytes) { return static_cast<double>(bytes) / 1e9; }
double gb(double bytes) { return bytes / 1e9; }

KvBudget tokens_of(uint64_t kv_bytes, uint64_t per_token) {
  return KvBudget{kv_bytes, per_token > 0 ? static_cast<int64_t>(kv_bytes / per_token) : 0};
}

}  // namespace

MemoryRoom memory_room(const MemoryPlanInputs& in) {
  const runtime::DeviceMemory& m = in.memory.value();
  const double in_use = static_cast<double>(m.total_bytes - std::min(m.free_bytes, m.total_bytes));
  MemoryRoom room;
  // What others hold: before loading all of it; after, less our weights.
  room.others_bytes = std::max(0.0, in_use - (in.weights_loaded ? static_cast<double>(in.weight_bytes) : 0.0));
  room.allowed_bytes = in.gpu_memory_utilization * static_cast<double>(m.total_bytes) - room.others_bytes;
  room.needed_bytes = static_cast<double>(in.weight_bytes) + static_cast<double>(in.reserve_bytes);
  return room;
}

KvBudget plan_kv_budget(const MemoryPlanInputs& in) {
  if (!in.memory)
    return tokens_of(static_cast<uint64_t>((in.kv_cache_gb > 0 ? in.kv_cache_gb : kDefaultCpuKvCacheGb) * 1e9),
                     in.kv_bytes_per_token);
  const runtime::DeviceMemory& m = *in.memory;
  const MemoryRoom room = memory_room(in);
  const double allowed = room.allowed_bytes, needed = room.needed_bytes, others = room.others_bytes;
  const std::string found = fmt::format(
      "memory: this rank's shard needs {:.2f} GB of weights + {:.2f} GB for activations, and "
      "--gpu-memory-utilization={} of {}'s {:.2f} GB leaves {:.2f} GB ({:.2f} GB held by others)",
      gb(in.weight_bytes), gb(in.reserve_bytes), in.gpu_memory_utilization, in.device, gb(m.total_bytes),
      gb(std::max(allowed, 0.0)), gb(others));
  if (needed >= allowed) {
    throw Error(ErrorCode::load, fmt::format("{}; expected the weights to fit (use more --tp or --pp ranks, a smaller "
                                             "--dtype, or a higher --gpu-memory-utilization)",
                                             found));
  }
  const double left = allowed - needed;
  if (in.kv_cache_gb <= 0) return tokens_of(static_cast<uint64_t>(left), in.kv_bytes_per_token);
  const double asked = in.kv_cache_gb * 1e9;
  if (asked > left) {
    throw Error(ErrorCode::load, fmt::format("{}; --kv-cache-gb={} does not fit in the {:.2f} GB left (lower it, or pass "
                                             "0 to size the cache from --gpu-memory-utilization)",
                                             found, in.kv_cache_gb, gb(left)));
  }
  return tokens_of(static_cast<uint64_t>(asked), in.kv_bytes_per_token);
}

uint64_t estimate_shard_bytes(const runtime::ModelConfig& c, int tp_size, int pp_size, int pp_rank, int element_bytes) {
  const uint64_t H = c.hidden_size, F = c.ffn_hidden_size, A = c.attention_width(), E = c.embed_dim(), tp = tp_size;
  const uint64_t multiple = 128 * tp;  // GptModel pads the vocabulary to a multiple of 128 per TP rank
  const uint64_t rows = (c.vocab_size + multiple - 1) / multiple * multiple / tp;
  const auto layers = static_cast<uint64_t>(runtime::stage_layers(c.num_layers, pp_size, pp_rank).count);
  const uint64_t per_layer = (3 * A * H + 3 * A + H * A + F * H + F + H * F) / tp + 6 * H;
  uint64_t elements = layers * per_layer;
  const bool first = pp_rank == 0, last = pp_rank == pp_size - 1;
  if (first) elements += rows * E + static_cast<uint64_t>(c.max_position_embeddings + c.position_offset) * H;
  if (E != H) elements += (first ? H * E : 0) + (last ? E * H : 0);
  if (last) elements += (c.tied_output ? (first ? 0 : rows * E) : rows * H) + 2 * H;
  return elements * static_cast<uint64_t>(element_bytes);
}

uint64_t estimate_kv_bytes_per_token(const runtime::ModelConfig& c, int tp_size, int pp_size, int pp_rank, int element_bytes) {
  const auto layers = static_cast<uint64_t>(runtime::stage_layers(c.num_layers, pp_size, pp_rank).count);
  const auto local_heads = static_cast<uint64_t>(c.num_attention_heads / tp_size);
  return 2 * layers * local_heads * static_cast<uint64_t>(c.head_dim()) * static_cast<uint64_t>(element_bytes);
}

}  // namespace rankserve::launcher
