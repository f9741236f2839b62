#include "launcher/topology.h"

#include <doctest/doctest.h>

#include <fstream>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::launcher;

namespace {

LaunchContext context(EnvMap env, std::string host = "n1") { return LaunchContext{std::move(env), std::move(host), {}, 0}; }

EnvMap slurm_step(int procid, int nodeid, int localid) {
  return {{"SLURM_JOB_ID", "4242"},
          {"SLURM_STEP_ID", "0"},
          {"SLURM_PROCID", std::to_string(procid)},
          {"SLURM_LOCALID", std::to_string(localid)},
          {"SLURM_NODEID", std::to_string(nodeid)},
          {"SLURM_NTASKS", "6"},
          {"SLURM_NNODES", "3"},
          {"SLURM_STEP_NODELIST", "gpu-a[01-02],gpu-b12"},
          {"SLURM_STEP_TASKS_PER_NODE", "2(x3)"},
          {"SLURMD_NODENAME", "gpu-a02"}};
}

}  // namespace

TEST_CASE("reads rank, nodes and hosts of a Slurm step, with the store port derived from the job id") {
  Topology t = topology_from_env(Options{}, context(slurm_step(3, 1, 1)));
  CHECK(t.source == TopologySource::slurm);
  CHECK(t.rank == 3);
  CHECK(t.world_size == 6);
  CHECK(t.local_rank == 1);
  CHECK(t.local_world_size == 2);
  CHECK(t.node_rank == 1);
  CHECK(t.num_nodes == 3);
  CHECK(t.node_hosts == std::vector<std::string>{"gpu-a01", "gpu-a02", "gpu-b12"});
  CHECK(t.head_host == "gpu-a01");
  CHECK(t.head_port == 15000 + 4242);
  CHECK(t.job_id == "4242.0");
  CHECK(t.hostname == "gpu-a02");
  CHECK(t.host_of_rank(5) == "gpu-b12");
  CHECK_FALSE(t.spawn_workers);
}

TEST_CASE("an uneven Slurm layout keeps each node's task count") {
  EnvMap env = slurm_step(3, 1, 0);
  env["SLURM_NTASKS"] = "4";
  env["SLURM_NNODES"] = "2";
  env["SLURM_STEP_NODELIST"] = "n[1-2]";
  env["SLURM_STEP_TASKS_PER_NODE"] = "3,1";
  Topology t = topology_from_env(Options{}, context(env));
  CHECK(t.tasks_per_node == std::vector<int>{3, 1});
  CHECK(t.local_world_size == 1);
  CHECK(t.host_of_rank(2) == "n1");
  CHECK(t.host_of_rank(3) == "n2");
}

TEST_CASE("contradictory Slurm variables are topology errors naming them") {
  EnvMap env = slurm_step(0, 0, 0);
  env["SLURM_STEP_TASKS_PER_NODE"] = "2(x2)";
  CHECK_THROWS_WITH_AS(topology_from_env(Options{}, context(env)), doctest::Contains("SLURM_STEP_TASKS_PER_NODE=2(x2)"), Error);
  env = slurm_step(0, 0, 0);
  env["SLURM_NTASKS"] = "7";
  CHECK_THROWS_WITH_AS(topology_from_env(Options{}, context(env)), doctest::Contains("SLURM_NTASKS=7"), Error);
}

TEST_CASE("a batch script without a job step is told to use srun") {
  EnvMap env = slurm_step(0, 0, 0);
  env.erase("SLURM_STEP_ID");
  CHECK_THROWS_WITH_AS(topology_from_env(Options{}, context(env)), doctest::Contains("start rankserve with srun"), Error);
}

TEST_CASE("PMIx values are cross-checked against Slurm's") {
  LaunchContext c = context(slurm_step(3, 1, 1));
  c.pmix = PmixInfo{"slurm.pmix.4242.0", 2, 6, 0, 2, 1, 3, "gpu-a02", {}};
  CHECK_THROWS_WITH_AS(topology_from_env(Options{}, c), doctest::Contains("PMIx says rank 2 of 6 but SLURM_PROCID=3"), Error);
  c.pmix->rank = 3;
  CHECK(topology_from_env(Options{}, c).rank == 3);
}

TEST_CASE("under mpirun the PMIx view wins over the allocation's Slurm variables") {
  EnvMap env = slurm_step(0, 0, 0);  // what mpirun's daemons inherit
  env["OMPI_COMM_WORLD_RANK"] = "3";
  env["OMPI_COMM_WORLD_SIZE"] = "4";
  LaunchContext c = context(env, "n2");
  c.pmix = PmixInfo{"prterun-n1-1@1", 3, 4, 1, 2, 1, 2, "n2", {"n1", "n2"}};
  Topology t = topology_from_env(Options{}, c);
  CHECK(t.source == TopologySource::openmpi);
  CHECK(t.rank == 3);
  CHECK(t.world_size == 4);
  CHECK(t.node_rank == 1);
  CHECK(t.node_hosts == std::vector<std::string>{"n1", "n2"});
  CHECK(t.head_port == 0);  // published by rank 0 through PMIx
}

TEST_CASE("Open MPI variables alone need --head-url and map ranks by slot") {
  EnvMap env{{"OMPI_COMM_WORLD_RANK", "5"},
             {"OMPI_COMM_WORLD_SIZE", "8"},
             {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
             {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}};
  CHECK_THROWS_WITH_AS(topology_from_env(Options{}, context(env)), doctest::Contains("--head-url"), Error);
  Options o;
  o.head_url = "n1:2000";
  Topology t = topology_from_env(o, context(env));
  CHECK(t.node_rank == 1);
  CHECK(t.num_nodes == 2);
  CHECK(t.head_host == "n1");
  CHECK(t.head_port == 2000);
}

TEST_CASE("torchrun-style variables give rank, nodes and the store address") {
  EnvMap env{{"RANK", "5"},      {"WORLD_SIZE", "8"},         {"LOCAL_RANK", "1"},      {"LOCAL_WORLD_SIZE", "4"},
             {"NODE_RANK", "1"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
  Topology t = topology_from_env(Options{}, context(env));
  CHECK(t.source == TopologySource::torchrun);
  CHECK(t.num_nodes == 2);
  CHECK(t.head_host == "10.0.0.1");
  CHECK(t.head_port == 29500);
  CHECK(t.store_exists);
}

TEST_CASE("explicit flags describe one node of a hand-started job and spawn its workers") {
  Options o;
  o.rank = 1;
  o.nodes = 2;
  o.gpus = "4";
  o.head_url = "head.example:7000";
  Topology t = topology_from_env(o, context({}));
  CHECK(t.source == TopologySource::flags);
  CHECK(t.spawn_workers);
  CHECK(t.world_size == 8);
  CHECK(t.rank == 4);
  CHECK(t.local_world_size == 4);
  CHECK(t.head_host == "head.example");
  CHECK(t.head_port == 7000);
  Options only_rank;
  only_rank.rank = 0;
  CHECK(topology_from_env(only_rank, context({})).head_port == 12345);  // the OPT example's default
}

TEST_CASE("a StatefulSet pod takes its node rank from its ordinal and finds its replica's head by DNS") {
  Options o;
  o.k8s_service = "llm";
  o.nodes = 2;
  o.gpus = "2";
  Topology t = topology_from_env(o, context({}, "gpt-3"));
  CHECK(t.source == TopologySource::kubernetes);
  CHECK(t.node_rank == 1);
  CHECK(t.rank == 2);
  CHECK(t.head_host == "gpt-2.llm");
  CHECK(t.node_hosts == std::vector<std::string>{"gpt-2.llm", "gpt-3.llm"});  // the headless Service's records
  CHECK(t.job_id == "gpt-replica1");
  CHECK_THROWS_WITH_AS(topology_from_env(o, context({}, "standalone")), doctest::Contains("<statefulset>-<ordinal>"), Error);
}

TEST_CASE("with no launcher rankserve spawns --gpus local workers") {
  Options o;
  o.gpus = "3";
  Topology t = topology_from_env(o, context({}));
  CHECK(t.source == TopologySource::local);
  CHECK(t.spawn_workers);
  CHECK(t.world_size == 3);
  o.gpus = "-1";
  CHECK(topology_from_env(o, context({})).world_size == 1);
  LaunchContext with_gpus = context({});
  with_gpus.num_visible_gpus = 8;
  CHECK(topology_from_env(o, with_gpus).world_size == 8);
}

TEST_CASE("a spawned worker reads what its launcher set") {
  EnvMap env{{"RANKSERVE_WORKER", "1"},       {"RANK", "2"},         {"WORLD_SIZE", "4"},          {"LOCAL_RANK", "2"},
             {"LOCAL_WORLD_SIZE", "4"},       {"NODE_RANK", "0"},    {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "4000"},
             {"RANKSERVE_JOB_ID", "local-1"}, {"SLURM_PROCID", "0"}, {"SLURM_JOB_ID", "1"}};  // Slurm variables of an outer
                                                                                              // launch are ignored
  Topology t = topology_from_env(Options{}, context(env));
  CHECK(t.source == TopologySource::worker);
  CHECK(t.rank == 2);
  CHECK(t.job_id == "local-1");
  CHECK(t.node_hosts == std::vector<std::string>{"n1"});  // its own host only, unless the launcher names them

  // Under Kubernetes the launcher knows every node's host (its pods), and the workers name them in errors.
  env.insert_or_assign("WORLD_SIZE", "8");
  env.insert_or_assign("RANKSERVE_NODE_HOSTS", "llm-0,llm-1");
  t = topology_from_env(Options{}, context(env));
  CHECK(t.node_hosts == std::vector<std::string>{"llm-0", "llm-1"});
  CHECK(t.host_of_rank(5) == "llm-1");
}

TEST_CASE("--gpus accepts -1, a count or device ids and rejects anything else by name") {
  CHECK(parse_gpus("-1").per_node == -1);
  CHECK(parse_gpus("4").per_node == 4);
  CHECK(parse_gpus("2,3").ids == std::vector<int>{2, 3});
  for (const char* bad : {"0", "x", "1,1", "1,-2", ""}) {
    CHECK_THROWS_WITH_AS(parse_gpus(bad), doctest::Contains("--gpus"), Error);
  }
}
