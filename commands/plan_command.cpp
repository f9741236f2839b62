#include "commands/plan_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

#include "commands/model_loading.h"
#include "commands/serve_command.h"
#include "core/error.h"
#include "core/plural.h"
#include "launcher/layout_plan.h"
#include "launcher/topology.h"
#include "launcher/validate.h"
#include "runtime/engine.h"

namespace rankserve::launcher {
namespace {

namespace json = boost::json;

// Fewer sequences per copy than this earn a hint about --batch.
constexpr int kFewSequences = 16;

double gib(double bytes) { return bytes / 0x1p30; }
double gib(uint64_t bytes) { return gib(static_cast<double>(bytes)); }

// The job plan describes, as validate() sees a launch: --nodes x --gpus tasks, one per GPU.
Topology plan_topology(int num_nodes, int gpus_per_node) {
  Topology t;
  t.source = TopologySource::flags;
  t.num_nodes = num_nodes;
  t.local_world_size = gpus_per_node;
  t.world_size = num_nodes * gpus_per_node;
  t.tasks_per_node.assign(static_cast<size_t>(num_nodes), gpus_per_node);
  t.node_hosts.assign(static_cast<size_t>(num_nodes), "");
  t.world_size_from = "--nodes x --gpus";  // as serve names it
  t.num_nodes_from = t.tasks_per_node_from = t.world_size_from;
  return t;
}

const char* dtype_name(runtime::ComputeDtype d) {
  return d == runtime::ComputeDtype::bf16 ? "bf16" : d == runtime::ComputeDtype::fp16 ? "fp16" : "fp32";
}

std::string shell_word(const std::string& word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_./-:=+,@%").find(c) != std::string_view::npos;
  });
  if (plain) return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

bool given(const ParsedOptions& parsed, const char* name) {
  return std::find(parsed.set_by_user.begin(), parsed.set_by_user.end(), name) != parsed.set_by_user.end();
}

// The model as the user named it: a hub id rather than the snapshot it was fetched into.
const std::string& model_named(const Options& o) { return o.hub_model.empty() ? o.model_path : o.hub_model; }

// The sbatch line that serves the plan: serve.sbatch passes --nodes and --gpus from the job itself.
std::string submit_line(const ParsedOptions& parsed, const PlanRequest& r, const LayoutPlan& p) {
  const Options& o = parsed.options;
  std::string line =
      fmt::format("sbatch --nodes={} --ntasks-per-node={} --gpus-per-node={} sbatch/serve.sbatch --model-path {} --tp {} --pp {}",
                  r.num_nodes, r.gpus_per_node, r.gpus_per_node, shell_word(model_named(o)), p.tp_size, p.pp_size);
  if (o.dtype != "auto") line += fmt::format(" --dtype {}", o.dtype);
  if (given(parsed, "gpu-memory-utilization")) line += fmt::format(" --gpu-memory-utilization {}", o.gpu_memory_utilization);
  if (given(parsed, "kv-cache-gb")) line += fmt::format(" --kv-cache-gb {}", o.kv_cache_gb);
  return line;
}

std::string where(int tp, int pp, int gpus_per_node) {
  return fmt::format("tp {}{} x pp {} ({})", tp,
                     tp == 1               ? ""
                     : tp <= gpus_per_node ? " (within a node)"
                                           : " (across nodes)",
                     pp,
                     pp == 1                    ? "one stage"
                     : tp * pp <= gpus_per_node ? "within a node"
                                                : "across nodes");
}

// One row per run of identical stages (the middle stages of a deep pipeline are all alike).
std::string stage_table(const LayoutPlan& p) {
  std::string table = fmt::format(
      "stage    layers              weights GiB  KV KiB/token  KV GiB/sequence  KV budget GiB  "
      "KV tokens  sequences of {}",
      p.context);
  for (size_t s = 0; s < p.stages.size();) {
    const StagePlan& a = p.stages[s];
    size_t e = s;
    while (e + 1 < p.stages.size() && p.stages[e + 1].layers.count == a.layers.count &&
           p.stages[e + 1].weight_bytes == a.weight_bytes && p.stages[e + 1].kv.kv_tokens == a.kv.kv_tokens)
      ++e;
    const int last_layer = p.stages[e].layers.first + p.stages[e].layers.count - 1;
    const std::string stages = s == e ? fmt::format("{}", s) : fmt::format("{}-{}", s, e);
    const std::string layers = s == e ? fmt::format("{}-{} ({})", a.layers.first, last_layer, a.layers.count)
                                      : fmt::format("{}-{} ({} each)", a.layers.first, last_layer, a.layers.count);
    table += fmt::format("\n{:<8} {:<19} {:>11.2f}  {:>12.1f}  {:>15.3f}  {:>13.2f}  {:>9}  {:>9}", stages, layers,
                         gib(a.weight_bytes), static_cast<double>(a.kv_bytes_per_token) / 1024.0,
                         gib(static_cast<double>(a.kv_bytes_per_token) * p.context), gib(a.kv.kv_bytes), a.kv.kv_tokens,
                         p.context > 0 ? a.kv.kv_tokens / p.context : 0);
    s = e + 1;
  }
  return table;
}

// What would fit, as flags for the message and the text: more nodes, more GPUs per node, or bigger GPUs.
std::string remedies(const PlanRequest& r, const LayoutPlan& p) {
  std::vector<std::string> ways;
  if (p.nodes_needed > 0) ways.push_back(fmt::format("--nodes {} --gpus {}", p.nodes_needed, r.gpus_per_node));
  if (p.gpus_per_node_needed > 0) ways.push_back(fmt::format("--nodes {} --gpus {}", r.num_nodes, p.gpus_per_node_needed));
  if (p.nodes_needed_of_max_gpus > 0)
    ways.push_back(fmt::format("--nodes {} --gpus {}", p.nodes_needed_of_max_gpus, kMaxSuggestedGpusPerNode));
  ways.push_back(
      fmt::format("--gpu-memory {:.0f}GiB (at tp {} pp {})", std::ceil(gib(p.gpu_memory_needed)), p.tp_size, p.pp_size));
  return fmt::format("{}", fmt::join(ways, ", or "));
}

json::object plan_json(const ParsedOptions& parsed, const PlanRequest& r, const LayoutPlan& p, const char* dtype,
                       const std::string& submit) {
  json::array stages;
  for (const StagePlan& s : p.stages) {
    stages.push_back({{"first_layer", s.layers.first},
                      {"num_layers", s.layers.count},
                      {"weight_bytes", s.weight_bytes},
                      {"kv_bytes_per_token", s.kv_bytes_per_token},
                      {"needed_bytes", s.needed_bytes},
                      {"kv_budget_bytes", s.kv.kv_bytes},
                      {"kv_tokens", s.kv.kv_tokens}});
  }
  json::object out{{"model_path", model_named(parsed.options)},
                   {"dtype", dtype},
                   {"nodes", r.num_nodes},
                   {"gpus_per_node", r.gpus_per_node},
                   {"gpu_memory_bytes", r.gpu_memory_bytes},
                   {"allowed_bytes_per_gpu", static_cast<uint64_t>(std::max(p.allowed_bytes, 0.0))},
                   {"tp", p.tp_size},
                   {"pp", p.pp_size},
                   {"dp", p.dp_size},
                   {"context", p.context},
                   {"batch", r.batch},
                   {"fits", p.fits},
                   {"kv_tokens_per_copy", p.kv_tokens},
                   {"sequences_per_copy", p.sequences},
                   {"stages", std::move(stages)}};
  if (p.fits) {
    out["submit"] = submit;
  } else {
    out["shortfall_bytes"] = p.shortfall_bytes;
    out["gpu_memory_needed_bytes"] = p.gpu_memory_needed;
    out["nodes_needed"] = p.nodes_needed;
    out["gpus_per_node_needed"] = p.gpus_per_node_needed;
    out["nodes_needed_of_max_gpus"] = p.nodes_needed_of_max_gpus;
  }
  return out;
}

}  // namespace

int run_plan(const ParsedOptions& parsed) {
  const Options& o = parsed.options;
  const int num_nodes = std::max(o.nodes, 1);
  GpuSelection gpus;
  if (o.gpus != "-1") gpus = parse_gpus(o.gpus);
  const int gpus_per_node = std::max(gpus.per_node, 1);
  throw_if_any(validate(o, plan_topology(num_nodes, gpus_per_node), 0, [](const std::string&) { return true; }));

  const runtime::EngineOptions engine_options = engine_options_of(o, 0, -1);
  const runtime::ModelConfig config = runtime::read_model_config(engine_options);
  const runtime::ComputeDtype dtype = runtime::resolve_dtype(engine_options.dtype, "cuda:0", config);
  PlanRequest r;
  r.config = config;
  r.element_bytes = runtime::element_bytes(dtype);
  r.num_nodes = num_nodes;
  r.gpus_per_node = gpus_per_node;
  r.gpu_memory_bytes = parse_byte_size(o.gpu_memory).value_or(0);
  r.gpu_memory_utilization = o.gpu_memory_utilization;
  r.kv_cache_gb = o.kv_cache_gb;
  r.context = o.context;
  r.batch = o.batch;
  if (given(parsed, "tp")) r.tp_size = o.tp_size;
  if (given(parsed, "pp")) r.pp_size = o.pp_size;
  const LayoutPlan p = plan_layout(r);
  const std::string submit = submit_line(parsed, r, p);
  const std::string job =
      fmt::format("{} x {} of {}", count_of(num_nodes, "node", "nodes"), count_of(gpus_per_node, "GPU", "GPUs"), o.gpu_memory);

  if (o.json) {
    std::puts(json::serialize(plan_json(parsed, r, p, dtype_name(dtype), submit)).c_str());
  } else {
    std::string text =
        fmt::format("model: {}{} ({}), {}, from its config alone\n", o.hub_model.empty() ? "" : o.hub_model + " at ",
                    model_path_of(o), runtime::describe(config), dtype_name(dtype));
    text += fmt::format(
        "GPUs: {} ({:.2f} GiB); --gpu-memory-utilization {} lets each rank use {:.2f} GiB, {:.2f} GiB of it kept for "
        "activations\n",
        job, gib(r.gpu_memory_bytes), r.gpu_memory_utilization, gib(std::max(p.allowed_bytes, 0.0)),
        gib(kActivationReserveBytes));
    if (config.family == runtime::ModelFamily::nemo_gpt &&
        (config.checkpoint_tp_size != p.tp_size || config.checkpoint_pp_size != p.pp_size)) {
      text += fmt::format("checkpoint: saved at tp {} pp {}; serve re-shards it to this layout as it loads\n",
                          config.checkpoint_tp_size, config.checkpoint_pp_size);
    }
    text += fmt::format("layout{}: {} x dp {} ({}) = {}\n", p.fits ? "" : " (the closest)",
                        where(p.tp_size, p.pp_size, gpus_per_node), p.dp_size, count_of(p.dp_size, "model copy", "model copies"),
                        count_of(num_nodes * gpus_per_node, "rank", "ranks"));
    text += fmt::format("per rank:\n{}\n", stage_table(p));
    if (p.fits) {
      text += fmt::format(
          "fits: each copy holds {} of {} tokens at once (its KV budget: {} tokens, the smallest stage's); {} in all\n",
          count_of(p.sequences, "sequence", "sequences"), p.context, p.kv_tokens, p.sequences * p.dp_size);
      if (const int most = max_batch_size_of(o, config); p.sequences > most)
        text += fmt::format("serve runs at most {} of them at once per copy (--max-batch-size)\n", most);
      if (p.sequences < kFewSequences && !given(parsed, "batch") && r.kv_cache_gb <= 0) {
        PlanRequest more = r;  // suggested only where it fits these GPUs
        more.batch = kFewSequences;
        if (plan_layout(more).fits) {
          text += fmt::format("room for more: --batch {} plans a layout whose copies each hold {} sequences at once\n",
                              kFewSequences, kFewSequences);
        }
      }
      text += fmt::format("submit: {}\n", submit);
    } else {
      const auto worst = std::max_element(p.stages.begin(), p.stages.end(),
                                          [](const StagePlan& a, const StagePlan& b) { return a.needed_bytes < b.needed_bytes; });
      text += fmt::format(
          "does not fit: stage {} needs {:.2f} GiB per GPU ({:.2f} weights, {:.2f} activations, {:.2f} KV for {} of {} "
          "tokens{}) but each may use {:.2f} GiB: {:.2f} GiB short\n",
          worst - p.stages.begin(), gib(worst->needed_bytes), gib(worst->weight_bytes), gib(kActivationReserveBytes),
          gib(static_cast<double>(worst->needed_bytes - worst->weight_bytes - kActivationReserveBytes)),
          count_of(r.batch, "sequence", "sequences"), p.context, r.kv_cache_gb > 0 ? ", or --kv-cache-gb" : "",
          gib(std::max(p.allowed_bytes, 0.0)), gib(p.shortfall_bytes));
      text += fmt::format("would fit: {}\n", remedies(r, p));
    }
    std::fputs(text.c_str(), stdout);
  }
  std::fflush(stdout);
  if (!p.fits) {
    throw Error(ErrorCode::topology,
                fmt::format("plan: {} does not fit on {}: {:.2f} GiB short per GPU at tp {} pp {} (plan for {})", model_named(o),
                            job, gib(p.shortfall_bytes), p.tp_size, p.pp_size, remedies(r, p)));
  }
  return 0;
}

}  // namespace rankserve::launcher
