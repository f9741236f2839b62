#include "launcher/layout_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "launcher/setting_flags.h"
#include "launcher/validate.h"

namespace rankserve::launcher {
namespace {

int context_of(const PlanRequest& r) { return r.context > 0 ? r.context : r.config.max_position_embeddings; }

// (tp, pp) pairs in the order plan_layout prefers them: the smallest copy, then the fewest stages.
std::vector<std::pair<int, int>> candidates(const PlanRequest& r) {
  const int world = r.num_nodes * r.gpus_per_node;
  std::vector<int> tps, pps;
  if (r.tp_size > 0) {
    tps.push_back(r.tp_size);
  } else {
    for (int tp = 1; tp <= r.gpus_per_node; tp *= 2) {
      if (r.gpus_per_node % tp == 0 && r.config.num_attention_heads % tp == 0 && r.config.ffn_hidden_size % tp == 0)
        tps.push_back(tp);
    }
  }
  if (r.pp_size > 0) pps.push_back(r.pp_size);
  else
    for (int pp = 1; pp <= r.config.num_layers; ++pp) pps.push_back(pp);
  std::vector<std::pair<int, int>> out;
  for (int tp : tps) {
    for (int pp : pps) {
      if (world % (tp * pp) == 0) out.emplace_back(tp, pp);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::pair(a.first * a.second, a.second) < std::pair(b.first * b.second, b.second);
  });
  return out;
}

// The layout's stages with serve's memory arithmetic; with `stop_early`, only up to the first stage
// that does not fit (enough to reject it).
LayoutPlan evaluate(const PlanRequest& r, int tp, int pp, bool stop_early) {
  LayoutPlan p;
  p.tp_size = tp;
  p.pp_size = pp;
  p.dp_size = r.num_nodes * r.gpus_per_node / (tp * pp);
  p.context = context_of(r);
  MemoryPlanInputs in;
  in.device = "a GPU";
  in.memory = runtime::DeviceMemory{r.gpu_memory_bytes, r.gpu_memory_bytes};  // nothing held by others
  in.kv_cache_gb = r.kv_cache_gb;
  in.gpu_memory_utilization = r.gpu_memory_utilization;
  const auto min_tokens = static_cast<int64_t>(r.batch) * p.context;
  p.fits = true;
  for (int s = 0; s < pp; ++s) {
    StagePlan stage;
    stage.layers = runtime::stage_layers(r.config.num_layers, pp, s);
    stage.weight_bytes = estimate_shard_bytes(r.config, tp, pp, s, r.element_bytes);
    stage.kv_bytes_per_token = estimate_kv_bytes_per_token(r.config, tp, pp, s, r.element_bytes);
    in.weight_bytes = stage.weight_bytes;
    in.kv_bytes_per_token = stage.kv_bytes_per_token;
    const MemoryRoom room = memory_room(in);
    p.allowed_bytes = room.allowed_bytes;
    const double kv_needed =
        std::max(static_cast<double>(min_tokens) * static_cast<double>(stage.kv_bytes_per_token), r.kv_cache_gb * 1e9);
    stage.needed_bytes = static_cast<uint64_t>(std::ceil(room.needed_bytes + kv_needed));
    if (room.left_bytes() > 0) {
      try {
        stage.kv = plan_kv_budget(in);
      } catch (const Error&) {  // --kv-cache-gb beyond what is left: no budget
      }
    }
    const bool fits = stage.kv.kv_tokens >= min_tokens && stage.kv.kv_tokens > 0;
    p.kv_tokens = s == 0 ? stage.kv.kv_tokens : std::min(p.kv_tokens, stage.kv.kv_tokens);
    p.fits = p.fits && fits;
    p.stages.push_back(stage);
    if (!fits && stop_early) break;
  }
  p.sequences = p.context > 0 ? p.kv_tokens / p.context : 0;
  return p;
}

uint64_t worst_needed(const LayoutPlan& p) {
  uint64_t worst = 0;
  for (const StagePlan& s : p.stages) worst = std::max(worst, s.needed_bytes);
  return worst;
}

bool any_fits(PlanRequest r, int num_nodes, int gpus_per_node) {
  r.num_nodes = num_nodes;
  r.gpus_per_node = gpus_per_node;
  r.tp_size = r.pp_size = 0;
  for (const auto& [tp, pp] : candidates(r)) {
    if (evaluate(r, tp, pp, true).fits) return true;
  }
  return false;
}

// The fewest nodes of `gpus` GPUs, from `first` on, on which some layout fits (0: none). More nodes help
// until every layer has its own stage at the widest TP (tp <= gpus): at most num_layers nodes.
int fewest_nodes(const PlanRequest& r, int first, int gpus) {
  for (int n = first; n <= r.config.num_layers; ++n) {
    if (any_fits(r, n, gpus)) return n;
  }
  return 0;
}

}  // namespace

LayoutPlan plan_layout(const PlanRequest& r) {
  const runtime::ModelConfig& c = r.config;
  try {
    runtime::check_shardable(c, std::max(r.tp_size, 1), std::max(r.pp_size, 1));
  } catch (const Error& e) {
    throw with_flags(e);  // the plan command prints what(): its users set --tp and --pp
  }
  if (r.context > c.max_position_embeddings) {
    throw Error(ErrorCode::usage, fmt::format("options: --context={} exceeds the model's context of {} tokens (give at most {})",
                                              r.context, c.max_position_embeddings, c.max_position_embeddings));
  }
  const int world = r.num_nodes * r.gpus_per_node;
  const std::vector<std::pair<int, int>> all = candidates(r);
  if (all.empty()) {
    throw Error(ErrorCode::topology, layout_problem(std::max(r.tp_size, 1), std::max(r.pp_size, 1), world, "--nodes x --gpus"));
  }
  for (const auto& [tp, pp] : all) {
    if (LayoutPlan p = evaluate(r, tp, pp, true); p.fits) return p;
  }
  // Nothing fits: the layout that comes closest, with what would make it fit.
  LayoutPlan best;
  for (const auto& [tp, pp] : all) {
    LayoutPlan p = evaluate(r, tp, pp, false);
    if (best.stages.empty() || worst_needed(p) < worst_needed(best)) best = std::move(p);
  }
  const uint64_t worst = worst_needed(best);
  const auto allowed = static_cast<uint64_t>(std::max(best.allowed_bytes, 0.0));
  best.shortfall_bytes = worst > allowed ? worst - allowed : 0;
  best.gpu_memory_needed = static_cast<uint64_t>(std::ceil(static_cast<double>(worst) / r.gpu_memory_utilization)) + 1;
  best.nodes_needed = fewest_nodes(r, r.num_nodes + 1, r.gpus_per_node);
  for (int g = r.gpus_per_node + 1; best.gpus_per_node_needed == 0 && g <= kMaxSuggestedGpusPerNode; ++g) {
    if (any_fits(r, r.num_nodes, g)) best.gpus_per_node_needed = g;
  }
  if (best.gpus_per_node_needed == 0 && r.gpus_per_node < kMaxSuggestedGpusPerNode)
    best.nodes_needed_of_max_gpus = fewest_nodes(r, r.num_nodes + 1, kMaxSuggestedGpusPerNode);
  return best;
}

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
  if (end == 0) return std::nullopt;
  double number = 0;
  try {
    size_t used = 0;
    number = std::stod(text.substr(0, end), &used);
    if (used != end) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string unit;
  for (char ch : text.substr(end)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  static const std::pair<const char*, double> kUnits[] = {{"mb", 1e6},     {"gb", 1e9},     {"tb", 1e12},
                                                          {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40}};
  for (const auto& [name, scale] : kUnits) {
    if (unit == name && number > 0 && number * scale < 0x1p63) return static_cast<uint64_t>(number * scale);
  }
  return std::nullopt;
}

}  // namespace rankserve::launcher
