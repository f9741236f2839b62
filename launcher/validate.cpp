#include "launcher/validate.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/plural.h"
#include "launcher/hub_cache.h"
#include "launcher/layout_plan.h"

namespace rankserve::launcher {
namespace {

bool spawned(const Topology& t) { return t.spawn_workers || t.source == TopologySource::worker; }

void check_options(const Options& o, std::vector<Problem>& out) {
  auto usage = [&](std::string message) { out.push_back({ErrorCode::usage, std::move(message)}); };
  if (o.command != "check" && o.command != "generate" && o.command != "serve" && o.command != "plan") {
    usage(fmt::format("options: unknown command '{}'; expected check, generate, serve or plan", o.command));
  }
  if (o.command == "plan") {
    if (o.model_path.empty()) usage("options: plan needs --model-path (a model folder, a .nemo file, or random/<size>)");
    if (o.gpu_memory.empty()) usage("options: plan needs --gpu-memory, each GPU's memory (e.g. 80GB or 80GiB)");
    else if (!parse_byte_size(o.gpu_memory))
      usage(fmt::format("options: --gpu-memory={} is not a size like 80GB, 80GiB or 40960MiB", o.gpu_memory));
    if (o.gpus == "-1") usage("options: plan needs --gpus N, the GPUs per node to plan for");
    if (o.context < 0) usage(fmt::format("options: --context={} must be >= 0 (0: the model's context)", o.context));
    if (o.batch < 1) usage(fmt::format("options: --batch={} must be at least 1", o.batch));
  }
  if (o.command == "generate") {
    if (o.model_path.empty()) usage("options: generate needs --model-path (a model folder or random/<size>)");
    if (o.prompt_ids.empty() == o.prompt.empty()) usage("options: generate needs one of --prompt TEXT or --prompt-ids 1,2,3");
    if (o.max_tokens < 1) usage(fmt::format("options: --max-tokens={} must be at least 1", o.max_tokens));
    if (!(o.temperature > 0)) usage(fmt::format("options: --temperature={} must be > 0", o.temperature));
    if (o.top_k < 0) usage(fmt::format("options: --top-k={} must be >= 0", o.top_k));
    if (!(o.top_p > 0 && o.top_p <= 1)) usage(fmt::format("options: --top-p={} must be in (0, 1]", o.top_p));
    if (!(o.repetition_penalty > 0)) usage(fmt::format("options: --repetition-penalty={} must be > 0", o.repetition_penalty));
    if (o.min_length < 0) usage(fmt::format("options: --min-length={} must be >= 0", o.min_length));
  }
  if ((o.command == "serve" || o.command == "generate") && o.model_path.empty() && o.model_name.find('/') != std::string::npos) {
    usage(
        fmt::format("options: --model-name={} names a model to load (as the OPT example's --model-name does), but it is "
                    "neither random/<size>, a local folder or file, nor a hub id ORG/NAME[@REVISION]; pass --model-path "
                    "/path/to/it or ORG/NAME (--model-name is the name clients ask for, e.g. OPT)",
                    o.model_name));
  }
  if (o.command == "serve") {
    auto port = [&](const char* flag, int value, int lowest) {
      if (value < lowest || value > 65535) usage(fmt::format("options: --{}={} is not in {}..65535", flag, value, lowest));
    };
    port("http-port", o.http_port, 0);
    port("metrics-port", o.metrics_port, -1);
    port("grpc-port", o.grpc_port, -1);
    if (o.http_port != 0 && o.http_port == o.metrics_port) {
      usage(fmt::format("options: --http-port and --metrics-port are both {} (give different ports, or --metrics-port -1)",
                        o.http_port));
    }
    if (o.grpc_port > 0 && (o.grpc_port == o.http_port || o.grpc_port == o.metrics_port)) {
      usage(fmt::format("options: --grpc-port {} is also the {} (give different ports, or --grpc-port -1)", o.grpc_port,
                        o.grpc_port == o.http_port ? "--http-port" : "--metrics-port"));
    }
    if (o.max_batch_size < 0)
      usage(fmt::format("options: --max-batch-size={} must be >= 0 (0: the contract's)", o.max_batch_size));
    if (o.max_queue_size < 0) usage(fmt::format("options: --max-queue-size={} must be >= 0", o.max_queue_size));
    if (o.max_prefill_tokens < 1) usage(fmt::format("options: --max-prefill-tokens={} must be at least 1", o.max_prefill_tokens));
    if (!(o.request_timeout_s > 0)) usage(fmt::format("options: --request-timeout={} must be > 0 seconds", o.request_timeout_s));
    if (!(o.shutdown_timeout_s >= 0))
      usage(fmt::format("options: --shutdown-timeout={} must be >= 0 seconds", o.shutdown_timeout_s));
  }
  if ((o.command == "serve" || o.command == "plan") && !(o.kv_cache_gb >= 0))
    usage(fmt::format("options: --kv-cache-gb={} must be >= 0 (0: automatic)", o.kv_cache_gb));
  if (o.dtype != "auto" && o.dtype != "fp32" && o.dtype != "bf16" && o.dtype != "fp16") {
    usage(fmt::format("options: --dtype={} is not one of auto, fp32, bf16, fp16", o.dtype));
  }
  if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1)) {
    usage(fmt::format("options: --gpu-memory-utilization={} must be in (0, 1]", o.gpu_memory_utilization));
  }
  if (o.cpu_threads < 0) usage(fmt::format("options: --cpu-threads={} must be >= 0 (0: automatic)", o.cpu_threads));
  if (o.tp_size < 1) usage(fmt::format("options: --tp={} must be at least 1", o.tp_size));
  if (o.pp_size < 1) usage(fmt::format("options: --pp={} must be at least 1", o.pp_size));
  if (o.nodes < 0) usage(fmt::format("options: --nodes={} must be at least 1", o.nodes));
  if (!(o.timeout_s > 0)) usage(fmt::format("options: --timeout={} must be a positive number of seconds", o.timeout_s));
  if (!(o.check_duration_s >= 0)) usage(fmt::format("options: --check-duration={} must be >= 0 seconds", o.check_duration_s));
  if (o.store_port < 0 || o.store_port > 65535) usage(fmt::format("options: --store-port={} is not in 0..65535", o.store_port));
  if (o.rank >= 0 && o.nodes > 0 && o.rank >= o.nodes) {
    usage(fmt::format("options: --rank={} is not below --nodes={} (node ranks count from 0)", o.rank, o.nodes));
  }
}

void check_layout(const Options& o, const Topology& t, const GpuSelection& gpus, std::vector<Problem>& out) {
  auto topology = [&](std::string message) { out.push_back({ErrorCode::topology, std::move(message)}); };
  if (!spawned(t)) {
    if (o.nodes > 0 && o.nodes != t.num_nodes) {
      topology(fmt::format("topology: {} gives {} but --nodes {} (submit with --nodes={}, or pass --nodes {})", t.num_nodes_from,
                           count_of(t.num_nodes, "node", "nodes"), o.nodes, o.nodes, t.num_nodes));
    }
    if (gpus.per_node > 0) {
      const int nodes = o.nodes > 0 ? o.nodes : t.num_nodes;
      if (t.world_size != nodes * gpus.per_node) {
        topology(fmt::format("topology: {} but --nodes {} x --gpus {} = {} (submit with --ntasks-per-node={})", t.world_size_from,
                             nodes, gpus.per_node, nodes * gpus.per_node, gpus.per_node));
      }
      for (size_t n = 0; n < t.tasks_per_node.size(); ++n) {
        if (t.tasks_per_node[n] != gpus.per_node) {
          const std::string host =
              n < t.node_hosts.size() && !t.node_hosts[n].empty() ? t.node_hosts[n] : fmt::format("node {}", n);
          topology(
              fmt::format("topology: {} puts {} tasks on {} but --gpus {} asks for {} per node (submit with "
                          "--ntasks-per-node={})",
                          t.tasks_per_node_from, t.tasks_per_node[n], host, o.gpus, gpus.per_node, gpus.per_node));
        }
      }
    }
  }
  if (o.tp_size >= 1 && o.pp_size >= 1) {
    if (std::string problem = layout_problem(o.tp_size, o.pp_size, t.world_size, t.world_size_from); !problem.empty())
      topology(std::move(problem));
  }
  if (t.rank < 0 || t.rank >= t.world_size || t.local_rank < 0 || t.local_rank >= std::max(t.local_world_size, 1)) {
    topology(fmt::format("topology: rank {} / local rank {} out of range for world size {} / {} per node", t.rank, t.local_rank,
                         t.world_size, t.local_world_size));
  }
}

void check_devices(const Options& o, const Topology& t, const GpuSelection& gpus, int num_visible_gpus,
                   std::vector<Problem>& out) {
  if (num_visible_gpus <= 0) return;  // without GPUs --gpus counts ranks per node
  for (int id : gpus.ids) {
    if (id >= num_visible_gpus) {
      out.push_back({ErrorCode::topology, fmt::format("topology: --gpus {} names device {} but only {} GPUs are visible "
                                                      "(ids 0..{})",
                                                      o.gpus, id, num_visible_gpus, num_visible_gpus - 1)});
    }
  }
  if (gpus.ids.empty() && t.local_world_size > num_visible_gpus) {
    out.push_back({ErrorCode::topology, fmt::format("topology: {} ranks on this node but only {} GPUs are visible ({})",
                                                    t.local_world_size, num_visible_gpus, t.tasks_per_node_from)});
  }
}

}  // namespace

std::string layout_problem(int tp_size, int pp_size, int world_size, const std::string& world_size_from) {
  const int model_size = tp_size * pp_size;
  if (world_size % model_size == 0) return "";
  return fmt::format("topology: --tp {} x --pp {} = {} does not divide the world size {} ({}) (choose tp x pp dividing {})",
                     tp_size, pp_size, model_size, world_size, world_size_from, world_size);
}

std::string random_weights_warning(const Options& options) {
  if (options.model_path.rfind("random/", 0) != 0 || !parse_hub_id(options.model_name)) return "";
  return fmt::format(
      "serving the random weights of --model-path {} under --model-name {}: its answers are noise, not that "
      "model's (pass --model-path {} to load it)",
      options.model_path, options.model_name, options.model_name);
}

std::vector<Problem> validate_options(const Options& options) {
  std::vector<Problem> out;
  check_options(options, out);
  return out;
}

std::vector<Problem> validate(const Options& o, const Topology& t, int num_visible_gpus,
                              const std::function<bool(const std::string&)>& resolves) {
  std::vector<Problem> out;
  check_options(o, out);
  GpuSelection gpus;
  try {
    gpus = parse_gpus(o.gpus);
  } catch (const Error& e) {
    out.push_back({e.code(), e.what()});
  }
  check_layout(o, t, gpus, out);
  check_devices(o, t, gpus, num_visible_gpus, out);
  // A StatefulSet's DNS names appear only once pods have addresses: its launcher waits for the head's (main.cpp).
  if (!t.head_host.empty() && t.source != TopologySource::kubernetes && !resolves(t.head_host)) {
    out.push_back({ErrorCode::rendezvous, fmt::format("rendezvous: head host '{}' (from {}) does not resolve (fix the "
                                                      "name or give --head-url host:port)",
                                                      t.head_host, t.head_from)});
  }
  return out;
}

void throw_if_any(const std::vector<Problem>& problems) {
  if (problems.empty()) return;
  ErrorCode code = problems.front().code;
  std::string message;
  for (const Problem& p : problems) {
    code = std::min(code, p.code);
    if (!message.empty()) message += '\n';
    message += p.message;
  }
  throw Error(code, message);
}

}  // namespace rankserve::launcher
