// dist tier, serving: a multi-rank server under load loses a rank (kill -9) or is asked to stop
// (SIGTERM). Each request completes or gets a clear error; every rank exits within the deadline.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;
namespace fs = std::filesystem;

namespace {

const std::string kBin = RANKSERVE_BIN;
const std::string kClient = RANKSERVE_CLIENT_BIN;
const std::string kSource = RANKSERVE_SOURCE_DIR;

// The built-in model (random/125M, OPT architecture, GPT-2 vocabulary): slow enough on this machine
// (a few tokens per second per sequence) that requests are still running when the test acts.
struct LiveServer {
  fs::path dir;
  std::string url;
  std::unique_ptr<Process> process;

  explicit LiveServer(const std::string& flags) {
    dir = fs::temp_directory_path() / fmt::format("rankserve-serve-{}-{}", ::getpid(), std::rand());
    fs::create_directories(dir);
    process = std::make_unique<Process>(fmt::format("exec {} serve --http-port 0 --metrics-port -1 --url-file {}/url "
                                                    "--timeout 60 --log-all-ranks {}", kBin, dir.string(), flags));
    REQUIRE_MESSAGE(process->wait_for_output("Server http url", 120s), process->output());
    std::ifstream(dir / "url") >> url;
    auto ready = run(fmt::format("{} --url {} --init-timeout-s 60", kClient, url), 90s);
    REQUIRE_MESSAGE(ready.code == 0, ready.output << process->output());
  }
  ~LiveServer() { fs::remove_all(dir); }

  // A long generation in the background: curl prints the status code last.
  std::unique_ptr<Process> start_request(int max_tokens) const {
    return std::make_unique<Process>(fmt::format(
        "curl -sS --max-time 60 -w '\\n%{{http_code}}\\n' -X POST -H 'Content-Type: application/json' "
        "-d '{{\"model\":\"OPT\",\"prompt\":\"1 2 3\",\"max_tokens\":{},\"temperature\":0,\"ignore_eos\":true}}' {}/v1/completions",
        max_tokens, url));
  }
};

// pids of the server's worker ranks: the processes whose parent is the spawning launcher.
std::vector<pid_t> worker_pids(pid_t launcher) {
  auto r = run(fmt::format("pgrep -P {}", launcher), 10s);
  std::vector<pid_t> pids;
  std::istringstream in(r.output);
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

int status_of(const std::string& curl_output) {
  std::smatch m;
  static const std::regex last_code(R"((\d{3})\s*$)");
  return std::regex_search(curl_output, m, last_code) ? std::stoi(m[1]) : -1;
}

}  // namespace

TEST_CASE("serve: killing a worker under load fails the in-flight requests with an error naming the rank, and every rank exits within 10 s") {
  LiveServer server("--gpus 2 --tp 2");
  std::vector<std::unique_ptr<Process>> requests;
  for (int i = 0; i < 3; ++i) requests.push_back(server.start_request(100));
  std::this_thread::sleep_for(1500ms);  // let them join the batch
  const auto workers = worker_pids(server.process->pid());
  REQUIRE(workers.size() == 2);
  ::kill(workers[1], SIGKILL);
  const auto start = std::chrono::steady_clock::now();
  const auto code = server.process->wait_for(10s);
  INFO(server.process->output());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  for (auto& r : requests) {
    r->wait_for(20s);
    const std::string out = r->output();
    INFO(out);
    // Either the error response reached the client (naming the rank) or the connection dropped with the server.
    const int status = status_of(out);
    CHECK(status != 200);
    if (status >= 500) CHECK(out.find("rank 1") != std::string::npos);
  }
}

TEST_CASE("serve: SIGTERM under load drains: in-flight requests complete, new ones get 503, the server exits 0") {
  LiveServer server("--gpus 2 --tp 2 --shutdown-timeout 30");
  std::vector<std::unique_ptr<Process>> requests;
  for (int i = 0; i < 3; ++i) requests.push_back(server.start_request(40));
  std::this_thread::sleep_for(1500ms);
  server.process->signal(SIGTERM);
  REQUIRE(server.process->wait_for_output("draining", 10s));
  auto late = run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' "
                              "-d '{{\"model\":\"OPT\",\"prompt\":\"x\",\"max_tokens\":2}}' {}/v1/completions", server.url), 30s);
  INFO(late.output);
  CHECK(late.output.substr(0, 3) == "503");  // the requests above keep it draining for many seconds
  const auto code = server.process->wait_for(60s);
  INFO(server.process->output());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  for (auto& r : requests) {
    r->wait_for(20s);
    INFO(r->output());
    CHECK(status_of(r->output()) == 200);
    CHECK(r->output().find("\"finish_reason\":\"length\"") != std::string::npos);
  }
}

TEST_CASE("serve: with two data-parallel copies both copies run requests") {
  LiveServer server("--gpus 2 --tp 1 --log-level debug");
  std::vector<std::unique_ptr<Process>> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(server.start_request(20));
  for (auto& r : requests) {
    REQUIRE(r->wait_for(60s).has_value());
    CHECK(status_of(r->output()) == 200);
  }
  // Rank 0 logs each join with the copy it was routed to.
  const std::string log = server.process->output();
  CHECK(log.find("to copy 0") != std::string::npos);
  CHECK(log.find("to copy 1") != std::string::npos);
  server.process->signal(SIGTERM);
  CHECK(server.process->wait_for(30s) == std::optional<int>(0));
}

TEST_CASE("serve: a second SIGTERM during the drain exits at once, non-zero, leaving no rank behind") {
  LiveServer server("--gpus 2 --tp 2 --shutdown-timeout 60");
  auto request = server.start_request(200);
  std::this_thread::sleep_for(1500ms);
  server.process->signal(SIGTERM);
  REQUIRE(server.process->wait_for_output("draining", 10s));
  server.process->signal(SIGTERM);
  const auto code = server.process->wait_for(10s);  // not the 60 s the drain would allow
  INFO(server.process->output());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(run(fmt::format("pgrep -P {}", server.process->pid()), 10s).code != 0);
}

TEST_CASE("serve: ports in use are all named, before any shard is loaded, with the usage code") {
  // Two listening sockets held by another process.
  Process holder("exec /usr/bin/python3 -c 'import socket, sys, time\n"
                 "ss = [socket.socket() for _ in range(2)]\n"
                 "[s.bind((\"0.0.0.0\", 0)) or s.listen() for s in ss]\n"
                 "print(\"ports\", *[s.getsockname()[1] for s in ss], flush=True)\ntime.sleep(300)'");
  REQUIRE(holder.wait_for_output("ports", 10s));
  std::istringstream in(holder.output().substr(holder.output().find("ports") + 5));
  int http = 0, metrics = 0;
  in >> http >> metrics;
  auto r = run(fmt::format("{} serve --gpus 2 --tp 2 --http-port {} --metrics-port {} --timeout 60", kBin, http, metrics), 60s);
  INFO(r.output);
  CHECK(r.code == 2);
  CHECK(r.output.find(fmt::format(":{} (--http-port)", http)) != std::string::npos);
  CHECK(r.output.find(fmt::format(":{} (--metrics-port)", metrics)) != std::string::npos);
  CHECK(r.output.find("loaded random/125M") == std::string::npos);  // rank 0 never loaded its shard
}
