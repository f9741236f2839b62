#include "launcher/validate.h"

#include <doctest/doctest.h>

using namespace rankserve;
using namespace rankserve::launcher;

namespace {

const auto kResolvesAll = [](const std::string&) { return true; };

Topology slurm(int world, int nodes, std::vector<int> tasks_per_node) {
  Topology t;
  t.source = TopologySource::slurm;
  t.world_size = world;
  t.num_nodes = nodes;
  t.tasks_per_node = std::move(tasks_per_node);
  for (int n = 0; n < nodes; ++n) t.node_hosts.push_back("n" + std::to_string(n + 1));
  t.local_world_size = t.tasks_per_node.front();
  t.head_host = "n1";
  t.world_size_from = "SLURM_NTASKS=" + std::to_string(world);
  t.num_nodes_from = "SLURM_NNODES=" + std::to_string(nodes);
  t.tasks_per_node_from = "SLURM_STEP_TASKS_PER_NODE";
  t.head_from = "SLURM_STEP_NODELIST";
  return t;
}

std::string all_messages(const std::vector<Problem>& problems) {
  std::string out;
  for (auto& p : problems) out += p.message + "\n";
  return out;
}

}  // namespace

TEST_CASE("rejects a step whose tasks are not nodes x gpus, naming the variable and the fix") {
  Options o;
  o.nodes = 2;
  o.gpus = "4";
  auto problems = validate(o, slurm(7, 2, {4, 3}), 0, kResolvesAll);
  const std::string text = all_messages(problems);
  CHECK(text.find("topology: SLURM_NTASKS=7 but --nodes 2 x --gpus 4 = 8 (submit with --ntasks-per-node=4)") !=
        std::string::npos);
  CHECK(text.find("puts 3 tasks on n2") != std::string::npos);
  CHECK(problems.front().code == ErrorCode::topology);
}

TEST_CASE("rejects a node count different from --nodes") {
  Options o;
  o.nodes = 2;
  const std::string text = all_messages(validate(o, slurm(4, 1, {4}), 0, kResolvesAll));
  CHECK(text.find("SLURM_NNODES=1 gives 1 node but --nodes 2") != std::string::npos);
}

TEST_CASE("rejects tp x pp that does not divide the world") {
  Options o;
  o.tp_size = 3;
  const std::string text = all_messages(validate(o, slurm(4, 2, {2, 2}), 0, kResolvesAll));
  CHECK(text.find("--tp 3 x --pp 1 = 3 does not divide the world size 4") != std::string::npos);
}

TEST_CASE("rejects GPU ids that do not exist when GPUs are visible") {
  Options o;
  o.gpus = "2,5";
  Topology t = slurm(4, 2, {2, 2});
  CHECK(all_messages(validate(o, t, 4, kResolvesAll)).find("names device 5 but only 4 GPUs are visible") != std::string::npos);
  CHECK(validate(o, t, 0, kResolvesAll).empty());  // without GPUs ids only count ranks
}

TEST_CASE("rejects a head host that does not resolve") {
  auto problems = validate(Options{}, slurm(2, 1, {2}), 0, [](const std::string&) { return false; });
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].code == ErrorCode::rendezvous);
  CHECK(problems[0].message.find("head host 'n1' (from SLURM_STEP_NODELIST) does not resolve") != std::string::npos);
}

TEST_CASE("reports every problem at once with the most basic category") {
  Options o;
  o.tp_size = 0;
  o.timeout_s = -1;
  o.nodes = 3;
  auto problems = validate(o, slurm(4, 2, {2, 2}), 0, kResolvesAll);
  CHECK(problems.size() >= 3);
  try {
    throw_if_any(problems);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::usage);
    const std::string text = e.what();
    CHECK(text.find("--tp=0") != std::string::npos);
    CHECK(text.find("--timeout=-1") != std::string::npos);
    CHECK(text.find("--nodes 3") != std::string::npos);
  }
}

TEST_CASE("accepts a consistent layout") {
  Options o;
  o.nodes = 2;
  o.gpus = "2";
  o.tp_size = 2;
  CHECK(validate(o, slurm(4, 2, {2, 2}), 0, kResolvesAll).empty());
}

TEST_CASE("serve checks --grpc-port: -1..65535 and not the HTTP or metrics port") {
  Options o;
  o.command = "serve";
  o.model_path = "random/125M";
  const Topology t = slurm(1, 1, {1});
  o.grpc_port = -1;
  CHECK(validate(o, t, 0, kResolvesAll).empty());
  o.grpc_port = 0;
  CHECK(validate(o, t, 0, kResolvesAll).empty());
  o.grpc_port = 70000;
  CHECK(all_messages(validate(o, t, 0, kResolvesAll)).find("--grpc-port=70000 is not in -1..65535") != std::string::npos);
  o.grpc_port = o.http_port;
  CHECK(all_messages(validate(o, t, 0, kResolvesAll)).find("--grpc-port 8000 is also the --http-port") != std::string::npos);
  o.grpc_port = o.metrics_port;
  CHECK(all_messages(validate(o, t, 0, kResolvesAll)).find("--grpc-port 8002 is also the --metrics-port") != std::string::npos);
}

TEST_CASE("--dtype defaults to auto, explicit dtypes stay valid, and --gpu-memory-utilization is a fraction") {
  Options o;
  o.command = "serve";
  CHECK(o.dtype == "auto");
  CHECK(validate(o, slurm(1, 1, {1}), 0, kResolvesAll).empty());
  for (const char* dtype : {"fp32", "bf16"}) {
    o.dtype = dtype;
    CHECK(validate(o, slurm(1, 1, {1}), 0, kResolvesAll).empty());
  }
  o.dtype = "fp64";
  CHECK(all_messages(validate(o, slurm(1, 1, {1}), 0, kResolvesAll)).find("--dtype=fp64 is not one of auto, fp32") !=
        std::string::npos);
  o.dtype = "auto";
  for (double bad : {0.0, -0.5, 1.5}) {
    o.gpu_memory_utilization = bad;
    CHECK(all_messages(validate(o, slurm(1, 1, {1}), 0, kResolvesAll)).find("--gpu-memory-utilization") != std::string::npos);
  }
}
