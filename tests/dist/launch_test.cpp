// dist tier: several rankserve processes on this machine over Gloo (no GPU, no Slurm).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;

namespace {

const std::string kBin = RANKSERVE_BIN;

// Starts `world` ranks by hand with torchrun-style variables (no supervising launcher).
std::vector<std::unique_ptr<Process>> start_ranks(int world, int port, const std::vector<int>& ranks, const std::string& flags) {
  std::vector<std::unique_ptr<Process>> procs;
  for (int r : ranks) {
    procs.push_back(std::make_unique<Process>(
        fmt::format("RANK={} WORLD_SIZE={} LOCAL_RANK={} LOCAL_WORLD_SIZE={} MASTER_ADDR=127.0.0.1 MASTER_PORT={} "
                    "RANKSERVE_JOB_ID=test-{} exec {} check {}",
                    r, world, r, world, port, port, kBin, flags)));
  }
  return procs;
}

int test_port() {
  static int next = 20000 + (::getpid() % 2000) * 4;
  return next++;
}

}  // namespace

TEST_CASE("a 4-rank local spawn passes the all-reduce check on every group for tp 1, 2, 4 and pp 2") {
  for (const char* layout : {"--tp 1", "--tp 2", "--tp 4", "--pp 2", "--tp 2 --pp 2"}) {
    auto r = run(fmt::format("{} check --gpus 4 {} --timeout 60", kBin, layout), 120s);
    INFO(layout << "\n" << r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("check passed: 4 ranks on 1 node") != std::string::npos);
    CHECK(r.output.find("all 4 ranks arrived") != std::string::npos);
  }
}

TEST_CASE("ranks started by hand with torchrun-style variables find each other") {
  const int port = test_port();
  auto procs = start_ranks(2, port, {0, 1}, "--tp 2 --timeout 60");
  for (auto& p : procs) {
    auto code = p->wait_for(60s);
    INFO(p->output());
    REQUIRE(code.has_value());
    CHECK(*code == 0);
  }
  CHECK(procs[0]->output().find("check passed: 2 ranks") != std::string::npos);
}

TEST_CASE("a rank that never arrives is named within the deadline and every rank exits with the rendezvous code") {
  const int port = test_port();
  const auto start = std::chrono::steady_clock::now();
  auto procs = start_ranks(4, port, {0, 1, 2}, "--timeout 4");  // rank 3 never starts
  for (auto& p : procs) {
    auto code = p->wait_for(30s);
    INFO(p->output());
    REQUIRE(code.has_value());
    CHECK(*code == 4);
    CHECK(p->output().find("never arrived within 4 s: rank 3") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < 20s);
}

TEST_CASE("a rank whose head never opens the store gives up at the deadline naming rank 0") {
  const int port = test_port();
  auto procs = start_ranks(2, port, {1}, "--timeout 3");
  auto code = procs[0]->wait_for(30s);
  INFO(procs[0]->output());
  REQUIRE(code.has_value());
  CHECK(*code == 4);
  CHECK(procs[0]->output().find("rank 0") != std::string::npos);
  CHECK(procs[0]->output().find("never opened the store") != std::string::npos);
}

TEST_CASE("killing one spawned worker makes the launcher stop the rest and exit non-zero within 10 s") {
  Process launcher(fmt::format("exec {} check --gpus 4 --check-duration 120 --timeout 60", kBin));
  REQUIRE(launcher.wait_for_output("all 4 ranks arrived", 60s));
  auto children = run(fmt::format("pgrep -P {}", launcher.pid()), 10s);
  REQUIRE(children.code == 0);
  const int victim = std::stoi(children.output.substr(children.output.find('\n') + 1));
  std::string comm;
  std::ifstream(fmt::format("/proc/{}/comm", victim)) >> comm;
  CHECK(comm == "rankserve");  // what ps and top show (not "exe")
  const auto killed_at = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  auto code = launcher.wait_for(10s);
  INFO(launcher.output());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(std::chrono::steady_clock::now() - killed_at < 10s);
  CHECK(launcher.output().find("was killed by signal 9") != std::string::npos);
  CHECK(run(fmt::format("pgrep -P {}", launcher.pid()), 10s).code != 0);  // no worker left behind
  // How many are still running when the launcher reaps the victim depends on timing; the words must agree with it.
  CHECK(launcher.output().find("spawned 4 workers") != std::string::npos);
  std::smatch stopping;
  const std::string output = launcher.output();
  REQUIRE(std::regex_search(output, stopping, std::regex("stopping the other (\\d+) (workers?)")));
  CHECK(stopping[1].str() != "0");
  CHECK((stopping[1].str() == "1") == (stopping[2].str() == "worker"));
}

TEST_CASE("killing one of several hand-started ranks makes every other rank exit non-zero within 10 s") {
  const int port = test_port();
  auto procs = start_ranks(4, port, {0, 1, 2, 3}, "--check-duration 120 --timeout 60");
  REQUIRE(procs[0]->wait_for_output("all 4 ranks arrived", 60s));
  std::this_thread::sleep_for(500ms);  // let the repeated checks run
  const auto killed_at = std::chrono::steady_clock::now();
  procs[2]->signal(SIGKILL);
  for (int r : {0, 1, 3}) {
    auto code = procs[static_cast<size_t>(r)]->wait_for(10s);
    INFO("rank " << r << ":\n" << procs[static_cast<size_t>(r)]->output());
    REQUIRE(code.has_value());
    CHECK(*code != 0);
  }
  CHECK(std::chrono::steady_clock::now() - killed_at < 11s);
}

TEST_CASE("SIGTERM to the launcher stops every worker") {
  Process launcher(fmt::format("exec {} check --gpus 2 --check-duration 120 --timeout 60", kBin));
  REQUIRE(launcher.wait_for_output("all 2 ranks arrived", 60s));
  ::kill(launcher.pid(), SIGTERM);
  auto code = launcher.wait_for(10s);
  INFO(launcher.output());
  REQUIRE(code.has_value());
  CHECK(*code == 128 + SIGTERM);
  CHECK(run(fmt::format("pgrep -P {}", launcher.pid()), 10s).code != 0);
}

TEST_CASE("a bad layout exits with the topology code before starting anything") {
  auto r = run(fmt::format("{} check --gpus 4 --tp 3", kBin), 30s);
  INFO(r.output);
  CHECK(r.code == 3);
  CHECK(r.output.find("--tp 3 x --pp 1 = 3 does not divide the world size 4") != std::string::npos);
  CHECK(r.output.find("spawned") == std::string::npos);
}

TEST_CASE("--dry-run prints the resolved options and topology and exits") {
  auto r = run(fmt::format("{} check --gpus 2 --tp 2 --dry-run", kBin), 30s);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("tp = 2") != std::string::npos);
  CHECK(r.output.find("source = local") != std::string::npos);
  CHECK(r.output.find("world_size = 2") != std::string::npos);
}

TEST_CASE("rankserve-client fails with a clear message when the server is unreachable") {
  auto r = run(fmt::format("{} --url http://127.0.0.1:{} --init-timeout-s 2", RANKSERVE_CLIENT_BIN, test_port()), 30s);
  INFO(r.output);
  CHECK(r.code != 0);
  CHECK(r.output.find("not ready within --init-timeout-s=2") != std::string::npos);
  CHECK(r.output.find("Connection refused") != std::string::npos);
}

TEST_CASE("the store admits only peers of the same job") {
  const int port = test_port();
  Process head(
      fmt::format("RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} "
                  "RANKSERVE_JOB_ID=job-a exec {} check --timeout 5",
                  port, kBin));
  auto intruder = run(fmt::format("RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} "
                                  "RANKSERVE_JOB_ID=job-b {} check --timeout 5",
                                  port, kBin),
                      30s);
  INFO(intruder.output);
  CHECK(intruder.code == 4);
  CHECK(intruder.output.find("belongs to job 'job-a', not to this job 'job-b'") != std::string::npos);
  auto code = head.wait_for(30s);
  INFO(head.output());
  CHECK(code == 4);  // its own peer never came
  CHECK(head.output().find("never arrived within 5 s: rank 1") != std::string::npos);
}

TEST_CASE("a store port already in use is a clear rendezvous error naming the port") {
  const int port = test_port();
  Process squatter(
      fmt::format("exec python3 -c 'import socket,time; s=socket.socket(); "
                  "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", {})); "
                  "s.listen(); print(\"listening\", flush=True); time.sleep(60)'",
                  port));
  REQUIRE(squatter.wait_for_output("listening", 10s));
  auto r = run(fmt::format("RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT={} {} check --timeout 5", port, kBin), 30s);
  INFO(r.output);
  CHECK(r.code == 4);
  CHECK(r.output.find(fmt::format("cannot serve the store on port {}", port)) != std::string::npos);
}

TEST_CASE("docs/cli.md is rankserve --help and rankserve-client --help, generated") {
  auto doc = run(fmt::format("cat {}/docs/cli.md", RANKSERVE_SOURCE_DIR), 10s);
  for (const std::string& bin : {kBin, std::string(RANKSERVE_CLIENT_BIN)}) {
    auto help = run(fmt::format("{} --help", bin), 30s);
    REQUIRE(help.code == 0);
    CHECK_MESSAGE(doc.output.find(help.output) != std::string::npos, "regenerate with scripts/gen-cli-doc.sh");
  }
}

TEST_CASE("a rank that hangs is named by rank 0's watchdog and every other rank exits within 10 s") {
  const int port = test_port();
  auto procs = start_ranks(4, port, {0, 1, 2, 3}, "--check-duration 120 --timeout 60");
  REQUIRE(procs[0]->wait_for_output("all 4 ranks arrived", 60s));
  std::this_thread::sleep_for(500ms);
  const auto stopped_at = std::chrono::steady_clock::now();
  procs[2]->signal(SIGSTOP);  // alive but silent: no collective error will ever come from it
  for (int r : {0, 1, 3}) {
    auto code = procs[static_cast<size_t>(r)]->wait_for(10s);
    INFO("rank " << r << ":\n" << procs[static_cast<size_t>(r)]->output());
    REQUIRE(code.has_value());
    CHECK(*code == 6);
    CHECK(procs[static_cast<size_t>(r)]->output().find("rank 2 (host ") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - stopped_at < 11s);
  procs[2]->signal(SIGKILL);
}

TEST_CASE("the OPT example's server command line (no subcommand, --model-name random/125M) serves the model") {
  const int port = test_port();
  const std::string dir = fmt::format("/tmp/rankserve-opt-line-{}", ::getpid());
  run(fmt::format("rm -rf {0} && mkdir -p {0}", dir), 10s);
  Process server(
      fmt::format("exec {} --head-url 127.0.0.1:{} --number-of-nodes 1 --rank 0 --model-name random/125M "
                  "--number-of-gpus 1 --http-port 0 --metrics-port -1 --url-file {}/url --timeout 60",
                  kBin, port, dir));
  const std::string url = rankserve::testing::wait_for_file_word(dir + "/url", 180s);
  INFO(server.output());
  REQUIRE(!url.empty());
  const auto model = run(fmt::format("curl -s {}/v2/models/OPT/ready -o /dev/null -w '%{{http_code}}'", url), 30s);
  CHECK(model.output == "200");  // served under the family's name, never as facebook/... with random weights
  CHECK(server.output().find("--model-name=random/125M is the model to load") != std::string::npos);
  server.signal(SIGTERM);
  CHECK(server.wait_for(60s).has_value());
  run(fmt::format("rm -rf {}", dir), 10s);
}
