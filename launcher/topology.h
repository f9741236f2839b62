// Who this process is in the job: built from the first launcher that applies (flags, Kubernetes,
// mpirun, Slurm, PMIx, torchrun-style variables, or none: rankserve spawns local workers).
// Pure: reads only the LaunchContext it is given, so tests feed captured environments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launcher/env.h"
#include "launcher/options.h"

namespace rankserve::launcher {

enum class TopologySource { worker, flags, kubernetes, openmpi, slurm, pmix, torchrun, local };
std::string_view to_string(TopologySource source);

// What PMIx_Init and PMIx_Get reported for this process (launcher/pmix_client fills it).
struct PmixInfo {
  std::string nspace;
  int rank = -1;
  int size = 0;
  int local_rank = -1;
  int local_size = 0;
  int node_id = -1;
  int num_nodes = 0;
  std::string hostname;
  std::vector<std::string> node_hosts;  // PMIX_NODE_LIST when the server gives it, else empty
};

// Everything topology_from_env may look at.
struct LaunchContext {
  EnvMap env;
  std::string hostname;
  std::optional<PmixInfo> pmix;
  int num_visible_gpus = 0;  // CUDA devices this process can see; 0 on CPU machines
};

// --gpus parsed: a count (-1: decided by the launcher) or explicit device ids.
struct GpuSelection {
  int per_node = -1;
  std::vector<int> ids;  // empty: the first per_node devices
};
GpuSelection parse_gpus(const std::string& text);

struct Topology {
  TopologySource source = TopologySource::local;
  int rank = 0;  // global rank; for a spawning launcher, the first rank of its node
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;  // ranks on this node
  int node_rank = 0;
  int num_nodes = 1;
  std::vector<std::string> node_hosts;  // by node rank; "" where the source does not say
  std::vector<int> tasks_per_node;      // by node rank
  std::string head_host;                // rendezvous store host ("" when PMIx publishes it)
  int head_port = 0;                    // 0: chosen at start-up (free port, published to peers)
  bool store_exists = false;            // an external agent (torchrun) already serves the store
  std::string job_id;                   // peers must agree on it to be admitted
  std::string hostname;                 // this process's host
  bool spawn_workers = false;           // this process forks local_world_size workers and supervises them

  // Where the numbers came from, quoted in validation messages ("SLURM_NTASKS", "--nodes x --gpus").
  std::string world_size_from;
  std::string num_nodes_from;
  std::string tasks_per_node_from;
  std::string head_from;

  // Host the rank is expected on (block distribution); "" when unknown.
  std::string host_of_rank(int rank) const;
};

// Builds the topology from the first source that applies. Throws Error(usage|topology) naming the
// variable when a source's values are malformed or contradict each other.
Topology topology_from_env(const Options& options, const LaunchContext& context);

// One line per rank: "rank 3/8 local 1/4 node 0/2 host gpu-a01 source slurm job 42.0".
std::string describe_rank(const Topology& topology);

// The multi-line summary for --dry-run (node table and head).
std::string describe_topology(const Topology& topology);

}  // namespace rankserve::launcher
