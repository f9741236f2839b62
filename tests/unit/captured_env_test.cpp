// Topology from environments captured on the test cluster (tests/cluster/cluster.sh, nodes n1 and
// n2) with `srun ... env`; the layouts are the ones those srun commands asked for.
#include <doctest/doctest.h>

#include <fstream>

#include "core/error.h"
#include "launcher/topology.h"
#include "launcher/validate.h"

using namespace rankserve;
using namespace rankserve::launcher;

namespace {

EnvMap load(const std::string& name) {
  const std::string path = std::string(RANKSERVE_FIXTURES) + "/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
  EnvMap env;
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

Topology topology_of(const std::string& name, const Options& options = {}) {
  return topology_from_env(options, LaunchContext{load(name), "ignored", {}, 0});
}

}  // namespace

TEST_CASE("srun -N2 --ntasks-per-node=2 --mpi=pmix: every rank knows its place") {
  const char* hosts[] = {"n1", "n1", "n2", "n2"};
  for (int r = 0; r < 4; ++r) {
    Topology t = topology_of("srun-pmix-2x2/rank" + std::to_string(r) + ".env");
    CHECK(t.source == TopologySource::slurm);
    CHECK(t.rank == r);
    CHECK(t.world_size == 4);
    CHECK(t.local_rank == r % 2);
    CHECK(t.local_world_size == 2);
    CHECK(t.node_rank == r / 2);
    CHECK(t.num_nodes == 2);
    CHECK(t.hostname == hosts[r]);
    CHECK(t.head_host == "n1");
    CHECK(t.node_hosts == std::vector<std::string>{"n1", "n2"});
  }
}

TEST_CASE("srun -N2 -n4 places 3 + 1 tasks, which --gpus 2 rejects naming the variable") {
  Topology t = topology_of("srun-plain-3-1/rank3.env");
  CHECK(t.tasks_per_node == std::vector<int>{3, 1});
  CHECK(t.node_rank == 1);
  CHECK(t.local_world_size == 1);
  Options o;
  o.nodes = 2;
  o.gpus = "2";
  auto problems = validate(o, t, 0, [](const std::string&) { return true; });
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].message ==
        "topology: SLURM_STEP_TASKS_PER_NODE=3,1 puts 3 tasks on n1 but --gpus 2 asks for 2 per "
        "node (submit with --ntasks-per-node=2)");
  CHECK(problems[1].message.find("puts 1 tasks on n2") != std::string::npos);
}

TEST_CASE("srun --gpus-per-node=2: the layout matches --gpus 2 on 2 nodes") {
  Topology t = topology_of("srun-gpus-2x2/rank2.env");
  Options o;
  o.nodes = 2;
  o.gpus = "2";
  CHECK(validate(o, t, 0, [](const std::string&) { return true; }).empty());
  CHECK(load("srun-gpus-2x2/rank2.env").at("CUDA_VISIBLE_DEVICES") == "0,1");
}

TEST_CASE("a batch script's own environment is refused: it is not a job step") {
  CHECK_THROWS_WITH_AS(topology_of("sbatch-script/batch.env"), doctest::Contains("start rankserve with srun"), Error);
}
