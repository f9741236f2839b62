#include "launcher/topology.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <numeric>

#include "core/error.h"
#include "core/plural.h"
#include "launcher/hostlist.h"

namespace rankserve::launcher {
namespace {

constexpr int kDefaultHeadPort = 12345;  // the OPT example's --head-url default port
constexpr int kDefaultK8sStorePort = 29500;

bool parse_int(std::string_view text, int& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

std::optional<int> env_int(const EnvMap& env, const std::string& key) {
  auto text = lookup(env, key);
  if (!text) return std::nullopt;
  int value = 0;
  if (!parse_int(*text, value) || value < 0) {
    throw Error(ErrorCode::usage, fmt::format("topology: {}={} is not a non-negative integer", key, *text));
  }
  return value;
}

int require_int(const EnvMap& env, const std::string& key, std::string_view source) {
  auto value = env_int(env, key);
  if (!value) throw Error(ErrorCode::topology, fmt::format("topology: {} is not set though {} is in use", key, source));
  return *value;
}

// The first variable of `keys` that is set.
std::optional<std::pair<std::string, std::string>> first_of(const EnvMap& env, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (auto value = lookup(env, key)) return std::make_pair(std::string(key), *value);
  }
  return std::nullopt;
}

// Splits "host:port"; `what` names the flag or variable for messages.
std::pair<std::string, int> split_host_port(const std::string& text, std::string_view what) {
  size_t colon = text.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !parse_int(std::string_view(text).substr(colon + 1), port) || port < 1 ||
      port > 65535) {
    throw Error(ErrorCode::usage, fmt::format("options: {}={} is not host:port with a port in 1..65535", what, text));
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, port};
}

// Port derived from a numeric job id, as the NeMo example does (15000 + last four digits).
int derived_store_port(const Options& options, std::string_view job_id) {
  if (options.store_port != 0) return options.store_port;
  int id = 0;
  if (!parse_int(job_id, id)) return 0;
  return kFirstDerivedStorePort + id % 10000;
}

// Node count and per-node counts when every node runs the same number of ranks.
void fill_uniform_nodes(Topology& t) {
  t.num_nodes = t.local_world_size > 0 ? t.world_size / t.local_world_size : 1;
  t.tasks_per_node.assign(static_cast<size_t>(std::max(t.num_nodes, 1)), t.local_world_size);
  t.node_hosts.assign(t.tasks_per_node.size(), "");
  if (t.node_rank >= 0 && t.node_rank < static_cast<int>(t.node_hosts.size())) t.node_hosts[t.node_rank] = t.hostname;
}

// Ranks per node for the sources where rankserve spawns the workers.
int spawned_ranks_per_node(const Options& options, const LaunchContext& context) {
  GpuSelection gpus = parse_gpus(options.gpus);
  if (gpus.per_node > 0) return gpus.per_node;
  return context.num_visible_gpus > 0 ? context.num_visible_gpus : 1;
}

Topology from_worker(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::worker;
  const EnvMap& env = c.env;
  t.rank = require_int(env, "RANK", "RANKSERVE_WORKER");
  t.world_size = require_int(env, "WORLD_SIZE", "RANKSERVE_WORKER");
  t.local_rank = require_int(env, "LOCAL_RANK", "RANKSERVE_WORKER");
  t.local_world_size = require_int(env, "LOCAL_WORLD_SIZE", "RANKSERVE_WORKER");
  t.node_rank = require_int(env, "NODE_RANK", "RANKSERVE_WORKER");
  t.hostname = c.hostname;
  fill_uniform_nodes(t);
  if (auto hosts = lookup(env, "RANKSERVE_NODE_HOSTS")) {
    std::vector<std::string> names = expand_hostlist(*hosts, "RANKSERVE_NODE_HOSTS");
    if (names.size() == t.node_hosts.size()) t.node_hosts = std::move(names);
  }
  t.head_host = lookup(env, "MASTER_ADDR").value_or("127.0.0.1");
  t.head_port = require_int(env, "MASTER_PORT", "RANKSERVE_WORKER");
  t.job_id = lookup(env, "RANKSERVE_JOB_ID").value_or("");
  t.world_size_from = "WORLD_SIZE (set by the rankserve launcher)";
  t.num_nodes_from = t.tasks_per_node_from = t.head_from = t.world_size_from;
  (void)options;
  return t;
}

Topology from_flags(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::flags;
  t.num_nodes = options.nodes > 0 ? options.nodes : 1;
  t.node_rank = options.rank >= 0 ? options.rank : 0;
  t.local_world_size = spawned_ranks_per_node(options, c);
  t.world_size = t.num_nodes * t.local_world_size;
  t.rank = t.node_rank * t.local_world_size;
  t.hostname = c.hostname;
  t.tasks_per_node.assign(static_cast<size_t>(t.num_nodes), t.local_world_size);
  t.node_hosts.assign(static_cast<size_t>(t.num_nodes), "");
  if (t.node_rank < t.num_nodes) t.node_hosts[static_cast<size_t>(t.node_rank)] = c.hostname;
  auto [host, port] = options.head_url.empty() ? std::make_pair(std::string("localhost"), kDefaultHeadPort)
                                               : split_host_port(options.head_url, "--head-url");
  t.head_host = host;
  t.head_port = options.store_port != 0 ? options.store_port : port;
  t.job_id = lookup(c.env, "RANKSERVE_JOB_ID").value_or(fmt::format("head-{}:{}", host, port));
  t.spawn_workers = true;
  t.world_size_from = "--nodes x --gpus";
  t.num_nodes_from = "--nodes";
  t.tasks_per_node_from = "--gpus";
  t.head_from = options.head_url.empty() ? "--head-url default" : "--head-url";
  return t;
}

Topology from_kubernetes(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::kubernetes;
  // A StatefulSet pod is named <statefulset>-<ordinal>; its hostname is the pod name.
  size_t dash = c.hostname.rfind('-');
  int ordinal = 0;
  if (dash == std::string::npos || !parse_int(std::string_view(c.hostname).substr(dash + 1), ordinal)) {
    throw Error(ErrorCode::topology, fmt::format("topology: --k8s-service is set but hostname '{}' is not "
                                                 "<statefulset>-<ordinal> (run inside a StatefulSet pod)",
                                                 c.hostname));
  }
  const std::string statefulset = c.hostname.substr(0, dash);
  t.num_nodes = options.nodes > 0 ? options.nodes : 1;
  t.node_rank = ordinal % t.num_nodes;
  const int replica = ordinal / t.num_nodes;
  t.local_world_size = spawned_ranks_per_node(options, c);
  t.world_size = t.num_nodes * t.local_world_size;
  t.rank = t.node_rank * t.local_world_size;
  t.hostname = c.hostname;
  t.tasks_per_node.assign(static_cast<size_t>(t.num_nodes), t.local_world_size);
  // Each pod by its headless Service's record <pod>.<service> (a bare pod name does not resolve in another pod);
  // the short name resolves through the pod's DNS search path, so no namespace is assumed.
  for (int n = 0; n < t.num_nodes; ++n)
    t.node_hosts.push_back(fmt::format("{}-{}.{}", statefulset, replica * t.num_nodes + n, options.k8s_service));
  t.head_host = t.node_hosts[0];
  t.head_port = options.store_port != 0 ? options.store_port : kDefaultK8sStorePort;
  t.job_id = fmt::format("{}-replica{}", statefulset, replica);
  t.spawn_workers = true;
  t.world_size_from = "--nodes x --gpus";
  t.num_nodes_from = "--nodes";
  t.tasks_per_node_from = "--gpus";
  t.head_from = "StatefulSet ordinal";
  return t;
}

Topology from_pmix(const Options& options, const LaunchContext& c, TopologySource source) {
  const PmixInfo& p = *c.pmix;
  Topology t;
  t.source = source;
  t.rank = p.rank;
  t.world_size = p.size;
  t.local_rank = p.local_rank;
  t.local_world_size = p.local_size;
  t.node_rank = p.node_id;
  t.hostname = p.hostname.empty() ? c.hostname : p.hostname;
  fill_uniform_nodes(t);
  if (p.num_nodes > 0) {
    t.num_nodes = p.num_nodes;
    t.tasks_per_node.assign(static_cast<size_t>(p.num_nodes), 0);
  }
  if (!p.node_hosts.empty()) {
    t.node_hosts = p.node_hosts;
    // PMIx node ids need not start at 0 (under mpirun the launching host is node 0): the position
    // of this host in the job's node list is the node rank.
    auto it = std::find(t.node_hosts.begin(), t.node_hosts.end(), t.hostname);
    if (it != t.node_hosts.end()) t.node_rank = static_cast<int>(it - t.node_hosts.begin());
  }
  t.node_hosts.resize(static_cast<size_t>(t.num_nodes));
  if (t.tasks_per_node.size() == static_cast<size_t>(t.num_nodes) && p.num_nodes > 0) {
    // PMIx gives the local size of this node only: assume the others alike unless the sizes disagree.
    std::fill(t.tasks_per_node.begin(), t.tasks_per_node.end(), p.local_size);
  }
  t.job_id = p.nspace;
  t.head_port = options.store_port;  // 0: rank 0 picks a free port and publishes it through PMIx
  t.world_size_from = "PMIx job size";
  t.num_nodes_from = "PMIx PMIX_NUM_NODES";
  t.tasks_per_node_from = "PMIx local size";
  t.head_from = "PMIx (published by rank 0)";
  return t;
}

Topology from_openmpi(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::openmpi;
  const EnvMap& env = c.env;
  t.rank = require_int(env, "OMPI_COMM_WORLD_RANK", "mpirun");
  t.world_size = require_int(env, "OMPI_COMM_WORLD_SIZE", "mpirun");
  t.local_rank = require_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun");
  t.local_world_size = require_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "mpirun");
  t.hostname = c.hostname;
  // mpirun maps by slot by default: node = rank / ranks per node.
  t.node_rank = t.local_world_size > 0 ? t.rank / t.local_world_size : 0;
  fill_uniform_nodes(t);
  if (options.head_url.empty()) {
    throw Error(ErrorCode::topology,
                "topology: mpirun without PMIx support cannot publish the head address "
                "(give --head-url host:port of rank 0's node)");
  }
  std::tie(t.head_host, t.head_port) = split_host_port(options.head_url, "--head-url");
  t.job_id = lookup(env, "OMPI_MCA_ess_base_jobid").value_or("openmpi");
  t.world_size_from = "OMPI_COMM_WORLD_SIZE";
  t.num_nodes_from = "OMPI_COMM_WORLD_SIZE / OMPI_COMM_WORLD_LOCAL_SIZE";
  t.tasks_per_node_from = "OMPI_COMM_WORLD_LOCAL_SIZE";
  t.head_from = "--head-url";
  return t;
}

Topology from_slurm(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::slurm;
  const EnvMap& env = c.env;
  t.rank = require_int(env, "SLURM_PROCID", "Slurm");
  t.local_rank = require_int(env, "SLURM_LOCALID", "Slurm");
  t.node_rank = require_int(env, "SLURM_NODEID", "Slurm");
  auto ntasks = first_of(env, {"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"});
  if (!ntasks) throw Error(ErrorCode::topology, "topology: SLURM_NTASKS is not set though SLURM_PROCID is");
  t.world_size = require_int(env, ntasks->first, "Slurm");
  t.world_size_from = fmt::format("{}={}", ntasks->first, ntasks->second);

  auto nodelist = first_of(env, {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"});
  if (!nodelist) throw Error(ErrorCode::topology, "topology: SLURM_STEP_NODELIST / SLURM_JOB_NODELIST is not set");
  t.node_hosts = expand_hostlist(nodelist->second, nodelist->first);
  auto nnodes = first_of(env, {"SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"});
  t.num_nodes = nnodes ? require_int(env, nnodes->first, "Slurm") : static_cast<int>(t.node_hosts.size());
  t.num_nodes_from = nnodes ? fmt::format("{}={}", nnodes->first, nnodes->second) : nodelist->first;
  if (static_cast<int>(t.node_hosts.size()) != t.num_nodes) {
    throw Error(ErrorCode::topology, fmt::format("topology: {}={} names {} but {} says {}", nodelist->first, nodelist->second,
                                                 count_of(static_cast<long long>(t.node_hosts.size()), "host", "hosts"),
                                                 t.num_nodes_from, count_of(t.num_nodes, "node", "nodes")));
  }
  auto tpn = first_of(env, {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"});
  if (!tpn) throw Error(ErrorCode::topology, "topology: SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE is not set");
  t.tasks_per_node = expand_tasks_per_node(tpn->second, tpn->first);
  t.tasks_per_node_from = fmt::format("{}={}", tpn->first, tpn->second);
  if (static_cast<int>(t.tasks_per_node.size()) != t.num_nodes) {
    throw Error(ErrorCode::topology, fmt::format("topology: {} lists {} but {} says {}", t.tasks_per_node_from,
                                                 count_of(static_cast<long long>(t.tasks_per_node.size()), "node", "nodes"),
                                                 t.num_nodes_from, t.num_nodes));
  }
  const int total = std::accumulate(t.tasks_per_node.begin(), t.tasks_per_node.end(), 0);
  if (total != t.world_size) {
    throw Error(ErrorCode::topology, fmt::format("topology: {} adds up to {} but {}", t.tasks_per_node_from,
                                                 count_of(total, "task", "tasks"), t.world_size_from));
  }
  if (t.node_rank >= t.num_nodes || t.rank >= t.world_size) {
    throw Error(ErrorCode::topology,
                fmt::format("topology: SLURM_NODEID={} / SLURM_PROCID={} out of range for {}, {}", t.node_rank, t.rank,
                            count_of(t.num_nodes, "node", "nodes"), count_of(t.world_size, "task", "tasks")));
  }
  t.local_world_size = t.tasks_per_node[static_cast<size_t>(t.node_rank)];
  t.hostname = lookup(env, "SLURMD_NODENAME").value_or(c.hostname);
  t.head_host = t.node_hosts.front();
  t.head_from = nodelist->first;
  const std::string job = lookup(env, "SLURM_JOB_ID").value_or(lookup(env, "SLURM_JOBID").value_or(""));
  if (job.empty()) throw Error(ErrorCode::topology, "topology: SLURM_JOB_ID is not set though SLURM_PROCID is");
  t.head_port = derived_store_port(options, job);
  t.job_id = fmt::format("{}.{}", job, lookup(env, "SLURM_STEP_ID").value_or("0"));

  if (c.pmix) {  // srun --mpi=pmix: both must describe the same process
    const PmixInfo& p = *c.pmix;
    if (p.rank != t.rank || p.size != t.world_size) {
      throw Error(ErrorCode::topology,
                  fmt::format("topology: PMIx says rank {} of {} but SLURM_PROCID={} and {} (launcher variables from "
                              "another step leaked into this one?)",
                              p.rank, p.size, t.rank, t.world_size_from));
    }
  }
  return t;
}

Topology from_torchrun(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::torchrun;
  const EnvMap& env = c.env;
  t.rank = require_int(env, "RANK", "torchrun-style launch");
  t.world_size = require_int(env, "WORLD_SIZE", "torchrun-style launch");
  t.local_rank = env_int(env, "LOCAL_RANK").value_or(0);
  t.local_world_size = env_int(env, "LOCAL_WORLD_SIZE").value_or(1);
  t.hostname = c.hostname;
  t.node_rank = env_int(env, "NODE_RANK").value_or(env_int(env, "GROUP_RANK").value_or(t.rank / std::max(1, t.local_world_size)));
  fill_uniform_nodes(t);
  t.head_host = lookup(env, "MASTER_ADDR").value_or("");
  if (t.head_host.empty()) throw Error(ErrorCode::topology, "topology: RANK and WORLD_SIZE are set but MASTER_ADDR is not");
  t.head_port = options.store_port != 0 ? options.store_port : require_int(env, "MASTER_PORT", "torchrun-style launch");
  // torchrun's agent already serves a store on MASTER_PORT; the workers are its clients.
  t.store_exists = lookup(env, "TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  t.job_id = lookup(env, "RANKSERVE_JOB_ID").value_or(lookup(env, "TORCHELASTIC_RUN_ID").value_or("torchrun"));
  t.world_size_from = fmt::format("WORLD_SIZE={}", t.world_size);
  t.num_nodes_from = "WORLD_SIZE / LOCAL_WORLD_SIZE";
  t.tasks_per_node_from = fmt::format("LOCAL_WORLD_SIZE={}", t.local_world_size);
  t.head_from = "MASTER_ADDR";
  return t;
}

Topology from_nothing(const Options& options, const LaunchContext& c) {
  Topology t;
  t.source = TopologySource::local;
  t.local_world_size = spawned_ranks_per_node(options, c);
  t.world_size = t.local_world_size;
  t.num_nodes = 1;
  t.hostname = c.hostname;
  t.node_hosts = {c.hostname};
  t.tasks_per_node = {t.local_world_size};
  t.head_host = "127.0.0.1";
  t.head_port = options.store_port;  // 0: a free port, chosen before spawning
  t.spawn_workers = true;
  t.world_size_from = "--gpus";
  t.num_nodes_from = "a local run";
  t.tasks_per_node_from = "--gpus";
  t.head_from = "this machine";
  return t;
}

}  // namespace

std::string_view to_string(TopologySource source) {
  switch (source) {
    case TopologySource::worker: return "rankserve-spawn";
    case TopologySource::flags: return "flags";
    case TopologySource::kubernetes: return "kubernetes";
    case TopologySource::openmpi: return "openmpi";
    case TopologySource::slurm: return "slurm";
    case TopologySource::pmix: return "pmix";
    case TopologySource::torchrun: return "torchrun";
    case TopologySource::local: return "local";
  }
  return "local";
}

GpuSelection parse_gpus(const std::string& text) {
  GpuSelection selection;
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::usage,
                 fmt::format("options: --gpus={} {} (use -1 for all, N for the first N, or ids like 0,2)", text, why));
  };
  if (text == "-1") return selection;
  if (text.find(',') == std::string::npos) {
    int count = 0;
    if (!parse_int(text, count)) throw bad("is not a number");
    if (count < 1) throw bad("must be at least 1");
    selection.per_node = count;
    return selection;
  }
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view item = std::string_view(text).substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int id = 0;
    if (!parse_int(item, id) || id < 0) throw bad(fmt::format("has '{}', not a device id", item));
    for (int seen : selection.ids) {
      if (seen == id) throw bad(fmt::format("names device {} twice", id));
    }
    selection.ids.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  selection.per_node = static_cast<int>(selection.ids.size());
  return selection;
}

std::string Topology::host_of_rank(int r) const {
  int first = 0;
  for (size_t node = 0; node < tasks_per_node.size(); ++node) {
    if (r < first + tasks_per_node[node]) return node < node_hosts.size() ? node_hosts[node] : "";
    first += tasks_per_node[node];
  }
  return "";
}

Topology topology_from_env(const Options& options, const LaunchContext& c) {
  const EnvMap& env = c.env;
  if (lookup(env, "RANKSERVE_WORKER").value_or("") == "1") return from_worker(options, c);
  if (options.rank >= 0) return from_flags(options, c);
  if (!options.k8s_service.empty()) return from_kubernetes(options, c);
  std::optional<Topology> t;
  if (lookup(env, "OMPI_COMM_WORLD_RANK")) {
    // Under mpirun the SLURM_* variables describe mpirun's daemons, not these processes.
    t = c.pmix ? from_pmix(options, c, TopologySource::openmpi) : from_openmpi(options, c);
  } else if (lookup(env, "SLURM_PROCID") && lookup(env, "SLURM_JOB_ID")) {
    if (!lookup(env, "SLURM_STEP_ID")) {
      throw Error(ErrorCode::topology,
                  fmt::format("topology: SLURM_JOB_ID={} is set but SLURM_STEP_ID is not: this is a batch script or "
                              "salloc shell, not a job step (start rankserve with srun)",
                              *lookup(env, "SLURM_JOB_ID")));
    }
    t = from_slurm(options, c);
  } else if (c.pmix) {
    t = from_pmix(options, c, TopologySource::pmix);
  } else if (lookup(env, "RANK") && lookup(env, "WORLD_SIZE")) {
    t = from_torchrun(options, c);
  } else if (!options.head_url.empty()) {
    return from_flags(options, c);
  } else {
    return from_nothing(options, c);
  }
  if (!options.head_url.empty()) {  // an explicit store address wins over the launcher's
    std::tie(t->head_host, t->head_port) = split_host_port(options.head_url, "--head-url");
    t->head_from = "--head-url";
    t->store_exists = false;
  }
  return *t;
}

std::string describe_rank(const Topology& t) {
  return fmt::format("rank {}/{} local {}/{} node {}/{} host {} source {} job {}", t.rank, t.world_size, t.local_rank,
                     t.local_world_size, t.node_rank, t.num_nodes, t.hostname, to_string(t.source),
                     t.job_id.empty() ? "-" : t.job_id);
}

std::string describe_topology(const Topology& t) {
  std::string out =
      fmt::format("source = {}\njob = {}\nworld_size = {} ({})\nnum_nodes = {} ({})\nhead = {}:{} ({})\n", to_string(t.source),
                  t.job_id.empty() ? "-" : t.job_id, t.world_size, t.world_size_from, t.num_nodes, t.num_nodes_from,
                  t.head_host.empty() ? "(published at start-up)" : t.head_host,
                  t.head_port == 0 ? std::string("(chosen at start-up)") : std::to_string(t.head_port), t.head_from);
  out += "node  host                            ranks\n";
  int first = 0;
  for (size_t n = 0; n < t.tasks_per_node.size(); ++n) {
    const std::string host = n < t.node_hosts.size() && !t.node_hosts[n].empty() ? t.node_hosts[n] : "?";
    out += fmt::format("{:<5} {:<31} {}-{}\n", n, host, first, first + t.tasks_per_node[n] - 1);
    first += t.tasks_per_node[n];
  }
  out += fmt::format("this process: {}{}\n", describe_rank(t), t.spawn_workers ? " (spawns the node's workers)" : "");
  return out;
}

}  // namespace rankserve::launcher
