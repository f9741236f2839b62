// dist tier, serving: a multi-rank server under load loses a rank (kill -9) or is asked to stop
// (SIGTERM). Each request completes or gets a clear error; every rank exits within the deadline.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kBin = RANKSERVE_BIN;
const std::string kClient = RANKSERVE_CLIENT_BIN;
const std::string kSource = RANKSERVE_SOURCE_DIR;

// random/125M (OPT architecture, GPT-2 vocabulary, random weights): slow enough on this machine
// (a few tokens per second per sequence) that requests are still running when the test acts.
struct LiveServer {
  fs::path dir;
  std::string url;
  std::unique_ptr<Process> process;

  explicit LiveServer(const std::string& flags) {
    dir = fs::temp_directory_path() / fmt::format("rankserve-serve-{}-{}", ::getpid(), std::rand());
    fs::create_directories(dir);
    process = std::make_unique<Process>(
        fmt::format("exec {} serve --model-path random/125M --http-port 0 --metrics-port -1 --grpc-port -1 --url-file {}/url "
                    "--timeout 60 --log-all-ranks {}",
                    kBin, dir.string(), flags));
    url = rankserve::testing::wait_for_file_word((dir / "url").string(), 180s);
    REQUIRE_MESSAGE(!url.empty(), process->output());
    // --url-file appears once the server is ready (before the model had loaded, it did not answer 200 yet).
    const auto health = run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' {}/v2/health/ready", url), 30s);
    CHECK_MESSAGE(health.output == "200", health.output << process->output());
    auto ready = run(fmt::format("{} --url {} --init-timeout-s 60", kClient, url), 90s);
    REQUIRE_MESSAGE(ready.code == 0, ready.output << process->output());
  }
  ~LiveServer() { fs::remove_all(dir); }

  // A long generation in the background: curl prints the status code last.
  std::unique_ptr<Process> start_request(int max_tokens) const {
    return std::make_unique<Process>(
        fmt::format("curl -sS --max-time 60 -w '\\n%{{http_code}}\\n' -X POST -H 'Content-Type: application/json' "
                    "-d '{{\"model\":\"OPT\",\"prompt\":\"1 2 3\",\"max_tokens\":{},\"temperature\":0,\"ignore_eos\":true}}' "
                    "{}/v1/completions",
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

// The request shapes a rank failure must answer, each in flight when the rank dies.
struct Shape {
  const char* name;
  const char* path;
  const char* body;
  bool openai;
  bool stream;
};
constexpr Shape kShapes[] = {
    {"OpenAI", "/v1/completions", R"({"model":"OPT","prompt":"1 2 3","max_tokens":300,"ignore_eos":true})", true, false},
    {"OpenAI stream", "/v1/completions", R"({"model":"OPT","prompt":"1 2 3","max_tokens":300,"ignore_eos":true,"stream":true})",
     true, true},
    {"KServe generate", "/v2/models/OPT/generate", R"({"text_input":"1 2 3","parameters":{"max_tokens":300}})", false, false},
    {"KServe generate_stream", "/v2/models/OPT/generate_stream", R"({"text_input":"1 2 3","parameters":{"max_tokens":300}})",
     false, true},
};

// The error message of a protocol-shaped error body: KServe {"error": "..."}, OpenAI {"error": {"message": ...}}.
std::optional<std::string> error_message(const std::string& text, bool openai) {
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return std::nullopt;
  const json::value& e = v.as_object().at("error");
  if (!openai) return e.is_string() ? std::optional<std::string>(e.as_string().c_str()) : std::nullopt;
  if (!e.is_object() || !e.as_object().contains("message") || !e.as_object().at("message").is_string()) return std::nullopt;
  return std::string(e.as_object().at("message").as_string().c_str());
}

// Checks one answer to a request in flight when rank `victim` died: non-streamed, a 503 with the
// protocol's error body; streamed, a 200 whose last event is the protocol's error (OpenAI then
// [DONE]), never a stream that just stops. The message names the dead rank and no other.
void check_failed_answer(const Shape& shape, const std::string& curl_output, int victim, int world_size) {
  INFO(shape.name << ":\n" << curl_output);
  const size_t last_line = curl_output.find_last_of('\n', curl_output.size() - 2);
  REQUIRE(last_line != std::string::npos);
  const std::string body = curl_output.substr(0, last_line);
  const int status = status_of(curl_output);
  std::optional<std::string> message;
  if (!shape.stream) {
    CHECK(status == 503);
    message = error_message(body, shape.openai);
  } else {
    CHECK(status == 200);
    std::vector<std::string> events;
    for (size_t at = 0; (at = body.find("data: ", at)) != std::string::npos; at += 6) {
      events.push_back(body.substr(at + 6, body.find('\n', at) - at - 6));
    }
    if (shape.openai) {
      REQUIRE(events.size() >= 2);
      CHECK(events.back() == "[DONE]");
      events.pop_back();
    }
    REQUIRE(!events.empty());
    message = error_message(events.back(), shape.openai);
  }
  REQUIRE_MESSAGE(message.has_value(), "no protocol-shaped error");
  CHECK(message->find(fmt::format("rank {} (host ", victim)) != std::string::npos);
  for (int r = 0; r < world_size; ++r) {
    if (r != victim) CHECK(message->find(fmt::format("rank {} (host ", r)) == std::string::npos);
  }
}

// kill -9 of worker `victim` while two requests of each shape run: every request gets an error naming
// it, readiness never says "draining" (it may name the failure before the server goes), and every
// rank exits, the launcher non-zero, within the hang guard.
void kill_rank_under_load(const std::string& layout, int world_size, int victim) {
  LiveServer server(layout);
  std::vector<std::pair<const Shape*, std::unique_ptr<Process>>> requests;
  for (int copy = 0; copy < 2; ++copy) {
    for (const Shape& shape : kShapes) {
      requests.emplace_back(
          &shape, std::make_unique<Process>(fmt::format(
                      "curl -sS -N --max-time 60 -w '\\n%{{http_code}}\\n' -H 'Content-Type: application/json' -d '{}' {}{}",
                      shape.body, server.url, shape.path)));
    }
  }
  // Running: every stream has sent a token (the others joined the same batch with them).
  for (const auto& entry : requests) {  // not a structured binding: clang 14 (tidy) cannot capture one in REQUIRE's lambda
    if (entry.first->stream) REQUIRE_MESSAGE(entry.second->wait_for_output("data: ", 60s), entry.second->output());
  }
  Process readiness(fmt::format("while :; do curl -s -m 2 {}/v2/health/ready; echo; sleep 0.05; done", server.url));
  REQUIRE(readiness.wait_for_output("ready", 10s));
  const auto workers = worker_pids(server.process->pid());
  REQUIRE(workers.size() == static_cast<size_t>(world_size));
  ::kill(workers[static_cast<size_t>(victim)], SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  const auto code = server.process->wait_for(10s);  // a hang guard; the target is 3 s (bench/failover_bench.sh)
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  readiness.signal(SIGKILL);
  const std::string polled = readiness.output();
  const bool named = polled.find(fmt::format("rank {} (host ", victim)) != std::string::npos;
  if (code) {
    MESSAGE(fmt::format("{}: every rank gone {:.2f} s after kill -9 of rank {} (launcher exit {}); readiness {}", layout, seconds,
                        victim, *code, named ? "named the failure" : "went from ready to refusing connections"));
  }
  INFO(server.process->output());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  for (pid_t pid : workers) CHECK(::kill(pid, 0) != 0);
  CHECK_MESSAGE(polled.find("draining") == std::string::npos, "readiness:\n" << polled);
  for (auto& [shape, request] : requests) {
    REQUIRE(request->wait_for(20s).has_value());
    check_failed_answer(*shape, request->output(), victim, world_size);
  }
}

}  // namespace

TEST_CASE(
    "serve: killing rank 1 (rank 0's tensor-parallel peer) under load fails every streamed and non-streamed request with "
    "an error naming rank 1, and every rank exits non-zero") {
  kill_rank_under_load("--gpus 2 --tp 2", 2, 1);
}

TEST_CASE(
    "serve: killing rank 3 (in neither of rank 0's tensor- and data-parallel groups) under load fails every request with an "
    "error naming rank 3, and every rank exits non-zero") {
  kill_rank_under_load("--gpus 4 --tp 2", 4, 3);
}

TEST_CASE("serve: SIGTERM under load drains: in-flight requests complete, new ones get 503, the server exits 0") {
  LiveServer server("--gpus 2 --tp 2 --shutdown-timeout 30");
  std::vector<std::unique_ptr<Process>> requests;
  for (int i = 0; i < 3; ++i) requests.push_back(server.start_request(40));
  std::this_thread::sleep_for(1500ms);
  server.process->signal(SIGTERM);
  REQUIRE(server.process->wait_for_output("draining", 10s));
  auto late = run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' "
                              "-d '{{\"model\":\"OPT\",\"prompt\":\"x\",\"max_tokens\":2}}' {}/v1/completions",
                              server.url),
                  30s);
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

TEST_CASE(
    "serve: SIGTERM to the launcher and to each worker at once, as Slurm signals every process of a step, is one "
    "signal: an in-flight request completes and the server exits 0") {
  LiveServer server("--gpus 2 --tp 2 --shutdown-timeout 60");
  auto request = server.start_request(40);
  std::this_thread::sleep_for(1500ms);
  const pid_t launcher = server.process->pid();
  // The launcher forwards the signal to its workers, which also get it directly: neither is a second signal.
  auto sent = run(fmt::format("kill -TERM $(pgrep -P {}) {}", launcher, launcher), 10s);
  REQUIRE_MESSAGE(sent.code == 0, sent.output);
  const auto code = server.process->wait_for(60s);
  INFO(server.process->output());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(server.process->output().find("draining") != std::string::npos);
  request->wait_for(20s);
  INFO(request->output());
  CHECK(status_of(request->output()) == 200);
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
  Process holder(
      "exec /usr/bin/python3 -c 'import socket, sys, time\n"
      "ss = [socket.socket() for _ in range(2)]\n"
      "[s.bind((\"0.0.0.0\", 0)) or s.listen() for s in ss]\n"
      "print(\"ports\", *[s.getsockname()[1] for s in ss], flush=True)\ntime.sleep(300)'");
  REQUIRE(holder.wait_for_output("ports", 10s));
  std::istringstream in(holder.output().substr(holder.output().find("ports") + 5));
  int http = 0, metrics = 0;
  in >> http >> metrics;
  auto r = run(
      fmt::format("{} serve --gpus 2 --tp 2 --http-port {} --metrics-port {} --grpc-port -1 --timeout 60", kBin, http, metrics),
      60s);
  INFO(r.output);
  CHECK(r.code == 2);
  CHECK(r.output.find(fmt::format(":{} (--http-port)", http)) != std::string::npos);
  CHECK(r.output.find(fmt::format(":{} (--metrics-port)", metrics)) != std::string::npos);
  CHECK(r.output.find(" INFO loaded ") == std::string::npos);  // no rank loaded its shard (the built-in model here)
  // The launcher's own last word names rank 0's cause, not only the worker that happened to exit first.
  const size_t last = r.output.rfind("] ERROR ");  // the launcher's line: "<cause>; worker rank N ... exited with code 2"
  REQUIRE(last != std::string::npos);
  const size_t line_start = r.output.rfind('\n', last) + 1;
  const std::string line = r.output.substr(line_start, r.output.find('\n', last) - line_start);
  CHECK(line.find("rank 0 (host") != std::string::npos);
  CHECK(line.find("exited with code 2") != std::string::npos);
  CHECK(line.find(fmt::format(":{} (--http-port)", http)) != std::string::npos);
}
