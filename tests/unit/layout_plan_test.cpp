#include "launcher/layout_plan.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/error.h"

using namespace rankserve::launcher;
using rankserve::runtime::ModelConfig;
using rankserve::runtime::random_model_config;

namespace {

constexpr uint64_t kGB = 1'000'000'000;

// The random/<size> rows of the OPT example's table (its README lists "random/17B" between 89B and
// 310B: the preset, like the example's code, is 175B).
const std::vector<std::string> kOptTable{"125M", "350M", "1.3B", "2.7B", "5B",   "6.7B", "13B",
                                         "20B",  "30B",  "66B",  "89B",  "175B", "310B", "530B"};

PlanRequest request(const std::string& size, int nodes, int gpus, uint64_t memory) {
  PlanRequest r;
  r.config = random_model_config("random/" + size);
  r.element_bytes = 2;  // bf16, --dtype auto on GPUs
  r.num_nodes = nodes;
  r.gpus_per_node = gpus;
  r.gpu_memory_bytes = memory;
  return r;
}

// What every plan that fits must satisfy, checked from its numbers rather than trusted.
void check_consistent(const PlanRequest& r, const LayoutPlan& p) {
  const ModelConfig& c = r.config;
  CHECK(p.tp_size * p.pp_size * p.dp_size == r.num_nodes * r.gpus_per_node);
  CHECK(c.num_attention_heads % p.tp_size == 0);
  REQUIRE(p.stages.size() == static_cast<size_t>(p.pp_size));
  int layers = 0;
  int64_t smallest = p.stages[0].kv.kv_tokens;
  for (const StagePlan& s : p.stages) {
    CHECK(s.layers.first == layers);
    layers += s.layers.count;
    // Weights, the reserve and the KV budget stay within what the GPU may use.
    CHECK(static_cast<double>(s.weight_bytes + kActivationReserveBytes + s.kv.kv_bytes) <=
          r.gpu_memory_utilization * static_cast<double>(r.gpu_memory_bytes) + 1);
    CHECK(s.kv.kv_tokens == static_cast<int64_t>(s.kv.kv_bytes / s.kv_bytes_per_token));
    CHECK(s.kv.kv_tokens >= static_cast<int64_t>(r.batch) * p.context);
    smallest = std::min(smallest, s.kv.kv_tokens);
  }
  CHECK(layers == c.num_layers);
  CHECK(p.kv_tokens == smallest);
  CHECK(p.sequences == smallest / p.context);
}

// No smaller model copy (tp x pp), nor the same size with fewer stages, fits: plan_layout took the first.
void check_smallest(const PlanRequest& r, const LayoutPlan& chosen) {
  for (int tp = 1; tp <= r.gpus_per_node; tp *= 2) {
    for (int pp = 1; pp <= r.config.num_layers; ++pp) {
      const int world = r.num_nodes * r.gpus_per_node;
      const bool before =
          tp * pp < chosen.tp_size * chosen.pp_size || (tp * pp == chosen.tp_size * chosen.pp_size && pp < chosen.pp_size);
      if (!before || world % (tp * pp) != 0 || r.config.num_attention_heads % tp != 0 || r.gpus_per_node % tp != 0) continue;
      PlanRequest forced = r;
      forced.tp_size = tp;
      forced.pp_size = pp;
      INFO("tp " << tp << " pp " << pp);
      CHECK_FALSE(plan_layout(forced).fits);
    }
  }
}

}  // namespace

TEST_CASE("every size of the OPT example's table gets the smallest layout that fits on 16 nodes x 8 GPUs of 80 GB") {
  int previous_copy = 1;
  for (const std::string& size : kOptTable) {
    INFO("random/" << size);
    const PlanRequest r = request(size, 16, 8, 80 * kGB);
    const LayoutPlan p = plan_layout(r);
    REQUIRE(p.fits);
    check_consistent(r, p);
    check_smallest(r, p);
    CHECK(p.tp_size <= 8);                                 // TP stays within a node
    CHECK((p.pp_size == 1 || p.tp_size * p.pp_size > 8));  // PP only when one node cannot hold a copy
    CHECK(p.tp_size * p.pp_size >= previous_copy);         // a larger model never needs a smaller copy
    previous_copy = p.tp_size * p.pp_size;
  }
}

TEST_CASE("530B on 16 nodes x 8 GPUs of 80 GB takes TP 8 within each node and PP across nodes") {
  const PlanRequest r = request("530B", 16, 8, 80 * kGB);
  const LayoutPlan p = plan_layout(r);
  REQUIRE(p.fits);
  CHECK(p.tp_size == 8);
  CHECK(p.pp_size >= 2);
  // Its bf16 weights (about 1.06 TB) do not fit on one node's 8 x 72 GB that the GPUs may use.
  PlanRequest one_node = r;
  one_node.num_nodes = 1;
  CHECK_FALSE(plan_layout(one_node).fits);
  // 64 sequences of 2048 tokens per copy need a longer pipeline than one sequence does.
  PlanRequest batch = r;
  batch.batch = 64;
  const LayoutPlan wide = plan_layout(batch);
  REQUIRE(wide.fits);
  check_consistent(batch, wide);
  CHECK(wide.tp_size * wide.pp_size > p.tp_size * p.pp_size);
  CHECK(wide.sequences >= 64);
}

TEST_CASE("66B does not fit on one 16 GB GPU: the plan says by how much and what would fit") {
  const PlanRequest r = request("66B", 1, 1, 16 * kGB);
  const LayoutPlan p = plan_layout(r);
  CHECK_FALSE(p.fits);
  REQUIRE(p.stages.size() == 1);
  // The whole model on the one GPU: its weights, the reserve and one 2048-token sequence's KV cache.
  const uint64_t weights = estimate_shard_bytes(r.config, 1, 1, 0, 2);
  CHECK(weights > 120 * kGB);  // about 12 x 64 x 9216^2 parameters in bf16
  const uint64_t needed = weights + kActivationReserveBytes + 2048 * estimate_kv_bytes_per_token(r.config, 1, 1, 0, 2);
  CHECK(p.stages[0].needed_bytes == needed);
  CHECK(p.shortfall_bytes == needed - static_cast<uint64_t>(0.9 * 16 * kGB));
  // The fewest nodes of one GPU that fit, and not one fewer.
  REQUIRE(p.nodes_needed > 1);
  CHECK(plan_layout(request("66B", p.nodes_needed, 1, 16 * kGB)).fits);
  CHECK_FALSE(plan_layout(request("66B", p.nodes_needed - 1, 1, 16 * kGB)).fits);
  // Eight 16 GB GPUs on the one node hold 16.5 GB of weights each: still too little.
  CHECK(p.gpus_per_node_needed == 0);
  CHECK_FALSE(plan_layout(request("66B", 1, 8, 16 * kGB)).fits);
  // So nodes of 8 such GPUs: the fewest that fit.
  REQUIRE(p.nodes_needed_of_max_gpus > 1);
  CHECK(plan_layout(request("66B", p.nodes_needed_of_max_gpus, 8, 16 * kGB)).fits);
  CHECK_FALSE(plan_layout(request("66B", p.nodes_needed_of_max_gpus - 1, 8, 16 * kGB)).fits);
  // The GPU memory that would hold it at this layout.
  CHECK(plan_layout(request("66B", 1, 1, p.gpu_memory_needed)).fits);
  CHECK_FALSE(plan_layout(request("66B", 1, 1, p.gpu_memory_needed * 99 / 100)).fits);
}

TEST_CASE("the KV budget per rank is what the GPU may use after the weights and the reserve, in tokens") {
  PlanRequest r = request("125M", 1, 1, 16 * kGB);
  const LayoutPlan p = plan_layout(r);
  REQUIRE(p.fits);
  CHECK(p.tp_size == 1);
  const uint64_t per_token = 2 * 12 * 768 * 2;  // keys and values of 12 layers of 768 in bf16
  CHECK(p.stages[0].kv_bytes_per_token == per_token);
  const double left = 0.9 * 16e9 - static_cast<double>(p.stages[0].weight_bytes) - static_cast<double>(kActivationReserveBytes);
  CHECK(p.kv_tokens == static_cast<int64_t>(static_cast<uint64_t>(left) / per_token));
  CHECK(p.sequences == p.kv_tokens / 2048);
  // --kv-cache-gb fixes the budget, as in serve.
  r.kv_cache_gb = 1;
  CHECK(plan_layout(r).kv_tokens == static_cast<int64_t>(kGB / per_token));
  r.context = 512;
  CHECK(plan_layout(r).sequences == static_cast<int64_t>(kGB / per_token) / 512);
}

TEST_CASE("given --tp and --pp are checked as serve checks them") {
  PlanRequest r = request("125M", 1, 8, 80 * kGB);
  r.tp_size = 5;
  CHECK_THROWS_WITH_AS(plan_layout(r), doctest::Contains("--tp 5 does not divide the model's 12 attention heads"),
                       rankserve::Error);
  r.tp_size = 3;  // divides the heads, not the 8 GPUs
  CHECK_THROWS_WITH_AS(plan_layout(r), doctest::Contains("topology: --tp 3 x --pp 1 = 3 does not divide the world size 8"),
                       rankserve::Error);
  r.tp_size = 2;
  r.pp_size = 3;  // 6 ranks per copy on 8 GPUs
  CHECK_THROWS_WITH_AS(plan_layout(r), doctest::Contains("topology: --tp 2 x --pp 3 = 6 does not divide the world size 8"),
                       rankserve::Error);
  r.pp_size = 13;
  CHECK_THROWS_WITH_AS(plan_layout(r), doctest::Contains("--pp 13 exceeds the model's 12 layers"), rankserve::Error);
  r.pp_size = 2;
  const LayoutPlan p = plan_layout(r);
  CHECK(p.tp_size == 2);
  CHECK(p.pp_size == 2);
  CHECK(p.dp_size == 2);
  r.context = 4096;
  CHECK_THROWS_WITH_AS(plan_layout(r), doctest::Contains("--context=4096 exceeds the model's context of 2048"), rankserve::Error);
}

TEST_CASE("GPU memory sizes take decimal and binary units") {
  CHECK(parse_byte_size("80GB") == 80 * kGB);
  CHECK(parse_byte_size("80GiB") == 80ULL << 30);
  CHECK(parse_byte_size("40960MiB") == 40ULL << 30);
  CHECK(parse_byte_size("1.5tb") == 1500 * kGB);
  for (const char* bad : {"80", "GB", "-1GB", "80 GB", "0GB", "1.2.3GB", "80GBs"}) {
    INFO(bad);
    CHECK_FALSE(parse_byte_size(bad).has_value());
  }
}
