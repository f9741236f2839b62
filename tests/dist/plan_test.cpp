// dist tier, `rankserve plan`: its weights and KV cache per rank against the memory table that serve and
// generate print once every rank has loaded its shard, for random/125M and tiny Hugging Face and NeMo
// checkpoints; its exit codes and messages when a model does not fit or --tp does not divide the world.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>

#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/reference_generation.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kBin = RANKSERVE_BIN;

// One row of the start-up memory table (commands/model_loading.cpp): MB, KB and tokens as printed.
struct TableRow {
  double weights_mb = 0, kv_kb_per_token = 0;
  int64_t kv_tokens = 0;
};

std::vector<TableRow> memory_table(const std::string& output) {
  const size_t at = output.find("memory per rank:");
  REQUIRE_MESSAGE(at != std::string::npos, output);
  std::istringstream lines(output.substr(at));
  std::string line;
  std::getline(lines, line);  // "... memory per rank:"
  std::getline(lines, line);  // the header
  static const std::regex row(R"(^(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$)");
  std::vector<TableRow> rows;
  for (std::smatch m; std::getline(lines, line) && std::regex_match(line, m, row);) {
    REQUIRE(std::stoul(m[1]) == rows.size());
    rows.push_back({std::stod(m[2]), std::stod(m[3]), std::stoll(m[6])});
  }
  REQUIRE_MESSAGE(!rows.empty(), output);
  return rows;
}

// The plan's JSON line in `output` (a FATAL line may follow it).
json::object json_line(const std::string& output) {
  const size_t at = output.find('{');
  REQUIRE_MESSAGE(at != std::string::npos, output);
  return json::parse(output.substr(at, output.find('\n', at) - at)).as_object();
}

json::object plan_json(const std::string& flags) {
  const auto r = run(fmt::format("{} plan --json {}", kBin, flags), 60s);
  INFO(flags << "\n" << r.output);
  REQUIRE(r.code == 0);
  return json_line(r.output);
}

// Every rank's row against the plan's stage of that rank (rank = pp_rank x dp x tp + ...: parallel_layout.h).
void check_agrees(const json::object& plan, const std::vector<TableRow>& rows) {
  const int tp = static_cast<int>(plan.at("tp").as_int64()), dp = static_cast<int>(plan.at("dp").as_int64());
  const json::array& stages = plan.at("stages").as_array();
  REQUIRE(rows.size() == static_cast<size_t>(tp * dp) * stages.size());
  for (size_t rank = 0; rank < rows.size(); ++rank) {
    const json::object& stage = stages.at(rank / static_cast<size_t>(tp * dp)).as_object();
    INFO("rank " << rank);
    // The table rounds to 0.1 MB and 0.1 KB; the token counts are exact (both from plan_kv_budget).
    CHECK(std::abs(stage.at("weight_bytes").to_number<double>() / 1e6 - rows[rank].weights_mb) <= 0.051);
    CHECK(std::abs(stage.at("kv_bytes_per_token").to_number<double>() / 1e3 - rows[rank].kv_kb_per_token) <= 0.051);
    CHECK(stage.at("kv_tokens").to_number<int64_t>() == rows[rank].kv_tokens);
  }
}

}  // namespace

TEST_CASE("plan chooses a layout for random/125M that serve then reports the same weights and KV cache per rank for") {
  // 1700 MB GPUs: the 0.5 GB of fp32 weights, the 1 GiB reserve and 0.2 GB of KV cache do not fit on one,
  // so plan splits the model; serve (on this machine's CPU) then runs that layout with the same --kv-cache-gb.
  const std::string common = "--model-path random/125M --nodes 1 --gpus 4 --dtype fp32 --kv-cache-gb 0.2";
  const json::object plan = plan_json(common + " --gpu-memory 1700MB");
  REQUIRE(plan.at("fits").as_bool());
  const int64_t tp = plan.at("tp").as_int64(), pp = plan.at("pp").as_int64();
  CHECK(tp * pp > 1);
  Process server(fmt::format("exec {} serve {} --tp {} --pp {} --http-port 0 --metrics-port -1 --grpc-port -1 --timeout 60", kBin,
                             common, tp, pp));
  REQUIRE_MESSAGE(server.wait_for_output(" served as ", 180s), server.output());
  server.signal(SIGTERM);
  CHECK(server.wait_for(60s).has_value());
  check_agrees(plan, memory_table(server.output()));
  const int64_t copies = 4 / (tp * pp);  // the data-parallel copies the other GPUs make
  CHECK_MESSAGE(server.output().find(fmt::format("': {} x ", copies == 1 ? "1 copy" : fmt::format("{} copies", copies))) !=
                    std::string::npos,
                server.output());
}

TEST_CASE("plan's weights and KV cache per rank are generate's for tiny Hugging Face and NeMo checkpoints at TP 2 x PP 2") {
  using rankserve::testing::make_model;
  using rankserve::testing::reference;
  const std::string opt = make_model("opt-postln");  // project_in/out, no final layer norm
  const std::string megatron = make_model("megatron-untied");
  const std::string nemo = megatron + "-nemo";
  reference(fmt::format("make-nemo {} {} 1 2", megatron, nemo));  // saved at TP 1 x PP 2, run at TP 2 x PP 2
  for (const std::string& model : {opt, nemo}) {
    INFO(model);
    const std::string flags = fmt::format("--model-path {} --gpus 4 --tp 2 --pp 2 --dtype fp32 --kv-cache-gb 0.5", model);
    const json::object plan = plan_json(flags + " --gpu-memory 80GB");
    const auto generated = run(fmt::format("{} generate {} --prompt-ids 1,2 --max-tokens 1 --timeout 60", kBin, flags), 120s);
    REQUIRE_MESSAGE(generated.code == 0, generated.output);
    check_agrees(plan, memory_table(generated.output));
  }
  fs::remove_all(opt);
  fs::remove_all(megatron);
  fs::remove_all(nemo);
}

TEST_CASE("plan exits with the topology code when the model does not fit, and the nodes it names do fit") {
  const std::string flags = "--model-path random/66B --gpus 1 --gpu-memory 16GB";
  const auto refused = run(fmt::format("{} plan {}", kBin, flags), 60s);
  INFO(refused.output);
  CHECK(refused.code == 3);
  CHECK(refused.output.find("does not fit: stage 0 needs") != std::string::npos);
  CHECK(refused.output.find("FATAL plan: random/66B does not fit on 1 node x 1 GPU of 16GB") != std::string::npos);
  const auto as_json = run(fmt::format("{} plan --json {}", kBin, flags), 60s);
  CHECK(as_json.code == 3);
  const json::object plan = json_line(as_json.output);
  CHECK_FALSE(plan.at("fits").as_bool());
  CHECK(plan.at("shortfall_bytes").to_number<double>() > 100e9);
  const int64_t nodes = plan.at("nodes_needed").as_int64();
  REQUIRE(nodes > 1);
  const auto enough = run(fmt::format("{} plan {} --nodes {}", kBin, flags, nodes), 60s);
  CHECK_MESSAGE(enough.code == 0, enough.output);
  CHECK(enough.output.find(fmt::format("submit: sbatch --nodes={} --ntasks-per-node=1 --gpus-per-node=1 sbatch/serve.sbatch "
                                       "--model-path random/66B --tp 1 --pp {}",
                                       nodes, nodes)) != std::string::npos);
  CHECK(run(fmt::format("{} plan {} --nodes {}", kBin, flags, nodes - 1), 60s).code == 3);
}

TEST_CASE("plan refuses a --tp that does not divide the world with serve's message and code") {
  const auto plan = run(fmt::format("{} plan --model-path random/125M --gpus 8 --gpu-memory 80GB --tp 3", kBin), 60s);
  const auto serve = run(fmt::format("{} serve --model-path random/125M --gpus 8 --tp 3 --dry-run", kBin), 60s);
  INFO(plan.output << "\n" << serve.output);
  CHECK(plan.code == 3);
  CHECK(serve.code == 3);
  // The same words; only where the world size came from differs (--gpus alone for serve's local run).
  for (const char* part :
       {"FATAL topology: --tp 3 x --pp 1 = 3 does not divide the world size 8 (", ") (choose tp x pp dividing 8)"}) {
    CHECK(plan.output.find(part) != std::string::npos);
    CHECK(serve.output.find(part) != std::string::npos);
  }
  const auto usage = run(fmt::format("{} plan --model-path random/125M --gpus 8", kBin), 60s);
  CHECK(usage.code == 2);
  CHECK(usage.output.find("plan needs --gpu-memory") != std::string::npos);
}

TEST_CASE("plan suggests --batch 16 only where a plan with it fits the same nodes") {
  const std::string common = fmt::format("{} plan --model-path random/530B --gpus 8 --gpu-memory 80GB", kBin);
  for (int nodes : {2, 4}) {  // 3 sequences per copy fit on both; 16 only across 4 nodes (pp 4)
    CAPTURE(nodes);
    const auto planned = run(fmt::format("{} --nodes {}", common, nodes), 60s);
    INFO(planned.output);
    REQUIRE(planned.code == 0);
    const bool suggested = planned.output.find("room for more: --batch 16") != std::string::npos;
    const auto with_batch = run(fmt::format("{} --nodes {} --batch 16", common, nodes), 60s);
    INFO(with_batch.output);
    CHECK(suggested == (with_batch.code == 0));
    CHECK(with_batch.code == (nodes == 4 ? 0 : 3));
  }
}
