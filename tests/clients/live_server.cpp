#include "tests/clients/live_server.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>

#include "tests/support/tiny_checkpoint.h"

namespace rankserve::testing {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

std::string text_file(const std::string& name, const std::string& text) {
  const fs::path path = fs::temp_directory_path() / fmt::format("rankserve-clients-{}-{}", ::getpid(), name);
  std::ofstream(path) << text;
  return path.string();
}

Server::Server(const std::string& family_name, const std::string& layout, const std::string& extra_flags,
               const std::string& prepare)
    : family(family_name) {
  static int count = 0;
  dir = fs::temp_directory_path() / fmt::format("rankserve-clients-{}-{}-{}", family, ::getpid(), count++);
  fs::create_directories(dir);
  make_text_checkpoint(family, dir.string());
  if (!prepare.empty()) {
    const auto prepared = run(fmt::format("cd {} && {}", dir.string(), prepare), 120s);
    REQUIRE_MESSAGE(prepared.code == 0, prepared.output);
  }
  const std::string url_file = (dir / "url").string();
  // gRPC on a free port too, unless the flags choose.
  const std::string grpc_flag = extra_flags.find("--grpc-port") == std::string::npos ? "--grpc-port 0" : "";
  process =
      std::make_unique<Process>(fmt::format("exec {} serve {} --model-path {} --http-port 0 --metrics-port 0 "
                                            "--url-file {} --timeout 60 --shutdown-timeout 10 {} {}",
                                            kBin, layout, dir.string(), url_file, grpc_flag, extra_flags));
  url = wait_for_file_word(url_file, 180s);  // written once the server is ready
  REQUIRE_MESSAGE(!url.empty(), process->output());
  const auto ready = run(fmt::format("{} --url {} --init-timeout-s 60", kClient, url), 90s);
  REQUIRE_MESSAGE(ready.code == 0, ready.output << process->output());
  const std::string log = process->output();
  const size_t at = log.find("Server metrics url http://");
  const size_t colon = log.find(':', at + 26);
  metrics_port = std::stoi(log.substr(colon + 1));
  if (const size_t grpc_at = log.find("Server grpc url grpc://"); grpc_at != std::string::npos) {
    grpc_port = std::stoi(log.substr(log.find(':', grpc_at + 23) + 1));
  }
}

Server::~Server() {
  process->signal(SIGTERM);
  process->wait_for(20s);
  fs::remove_all(dir);
}

json::value Server::generate(const std::string& prompt, int max_tokens) const {
  const std::string file = text_file("prompt", prompt);
  auto r = run(fmt::format("{} generate --gpus 2 --tp 2 --model-path {} --prompt \"$(cat {})\" --max-tokens {} --json "
                           "--log-level warn --timeout 60",
                           kBin, dir.string(), file, max_tokens),
               120s);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return json::parse(r.output.substr(r.output.rfind("{\"")));
}

int Server::num_workers_alive() const {
  const auto r = run(fmt::format("pgrep -c -P {} || true", process->pid()), 10s);
  return std::stoi(r.output);
}

Reply curl(const std::string& args) {
  auto r = run(fmt::format("curl -sS --max-time 120 -w '\\n%{{http_code}}' {}", args), 150s);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  const size_t newline = r.output.rfind('\n');
  return {std::stoi(r.output.substr(newline + 1)), r.output.substr(0, newline)};
}

Reply post_json(const std::string& url, const std::string& body, const std::string& curl_args) {
  return curl(fmt::format("-X POST -H 'Content-Type: application/json' {} --data-binary @{} {}", curl_args,
                          text_file("body", body), url));
}

}  // namespace rankserve::testing
