#include "launcher/memory_budget.h"

#include <doctest/doctest.h>

#include <string>

#include "core/error.h"

using namespace rankserve::launcher;
using rankserve::runtime::DeviceMemory;

namespace {

constexpr uint64_t kGB = 1'000'000'000;

MemoryPlanInputs gpu(uint64_t free_bytes, uint64_t total_bytes, uint64_t weights, double utilization) {
  MemoryPlanInputs in;
  in.device = "cuda:0";
  in.memory = DeviceMemory{free_bytes, total_bytes};
  in.weight_bytes = weights;
  in.kv_bytes_per_token = 1000;
  in.gpu_memory_utilization = utilization;
  in.reserve_bytes = 1 * kGB;
  return in;
}

std::string refusal(const MemoryPlanInputs& in) {
  try {
    plan_kv_budget(in);
  } catch (const rankserve::Error& e) {
    CHECK(e.code() == rankserve::ErrorCode::load);
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("on the CPU the KV budget is --kv-cache-gb, 2 GB by default") {
  MemoryPlanInputs in;
  in.kv_bytes_per_token = 3000;
  CHECK(plan_kv_budget(in).kv_bytes == 2 * kGB);
  CHECK(plan_kv_budget(in).kv_tokens == 2 * kGB / 3000);
  in.kv_cache_gb = 0.5;
  CHECK(plan_kv_budget(in).kv_tokens == kGB / 2 / 3000);
}

TEST_CASE("on a GPU the KV cache gets what the utilization leaves after the weights and the reserve") {
  // 80 GB device, 2 GB held by others before loading: 0.9 x 80 - 2 = 70 GB usable; 10 GB weights, 1 GB reserve.
  MemoryPlanInputs before = gpu(78 * kGB, 80 * kGB, 10 * kGB, 0.9);
  CHECK(plan_kv_budget(before).kv_bytes == 59 * kGB);
  CHECK(plan_kv_budget(before).kv_tokens == 59 * kGB / 1000);
  // Measured after loading: the 10 GB of weights are ours, not others'; the same budget.
  MemoryPlanInputs after = gpu(68 * kGB, 80 * kGB, 10 * kGB, 0.9);
  after.weights_loaded = true;
  CHECK(plan_kv_budget(after).kv_bytes == 59 * kGB);
  after.gpu_memory_utilization = 0.5;  // 40 - 2 - 10 - 1
  CHECK(plan_kv_budget(after).kv_bytes == 27 * kGB);
  after.kv_cache_gb = 4;
  CHECK(plan_kv_budget(after).kv_bytes == 4 * kGB);
}

TEST_CASE("a shard that does not fit is refused with the numbers") {
  // 0.9 x 80 - 2 = 70 GB usable; 75 GB of weights.
  const std::string message = refusal(gpu(78 * kGB, 80 * kGB, 75 * kGB, 0.9));
  CHECK(message.find("75.00 GB of weights") != std::string::npos);
  CHECK(message.find("--gpu-memory-utilization=0.9 of cuda:0's 80.00 GB leaves 70.00 GB") != std::string::npos);
  CHECK(message.find("2.00 GB held by others") != std::string::npos);
  CHECK(message.find("more --tp or --pp ranks") != std::string::npos);
  MemoryPlanInputs asked = gpu(78 * kGB, 80 * kGB, 10 * kGB, 0.9);
  asked.kv_cache_gb = 60;  // 59 GB left
  CHECK(refusal(asked).find("--kv-cache-gb=60 does not fit in the 59.00 GB left") != std::string::npos);
}

TEST_CASE("the shard estimate counts the layers, embeddings and output rows of each stage") {
  rankserve::runtime::ModelConfig c;
  c.num_layers = 4;
  c.hidden_size = 64;
  c.num_attention_heads = 4;
  c.ffn_hidden_size = 256;
  c.vocab_size = 1000;  // padded to 1024 rows
  c.max_position_embeddings = 32;
  const uint64_t layer = 3 * 64 * 64 + 3 * 64 + 64 * 64 + 256 * 64 + 256 + 64 * 256 + 6 * 64;
  const uint64_t whole = 4 * layer + 1024 * 64 + 32 * 64 + 2 * 64;
  CHECK(estimate_shard_bytes(c, 1, 1, 0, 4) == 4 * whole);
  CHECK(estimate_shard_bytes(c, 1, 2, 0, 2) == 2 * (2 * layer + 1024 * 64 + 32 * 64));
  CHECK(estimate_shard_bytes(c, 1, 2, 1, 2) == 2 * (2 * layer + 1024 * 64 + 2 * 64));  // tied output rows
}
