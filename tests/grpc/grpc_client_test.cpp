// grpc tier: rankserve-client --url grpc://host:port (client/grpc.h) against a live server of
// the built-in model, in the NeMo and OPT forms and streaming, with the answers HTTP gives.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;

TEST_CASE("rankserve-client --url grpc:// answers in the NeMo and OPT forms and streams, as over HTTP") {
  const std::string dir = fmt::format("/tmp/rankserve-grpc-client-{}", ::getpid());
  run(fmt::format("rm -rf {0} && mkdir -p {0}", dir), 10s);
  Process server(
      fmt::format("exec {} serve --gpus 2 --tp 2 --http-port 0 --metrics-port -1 --grpc-port 0 --url-file {}/url "
                  "--timeout 60",
                  RANKSERVE_BIN, dir));
  const std::string http = rankserve::testing::wait_for_file_word(dir + "/url", 180s);
  REQUIRE_MESSAGE(!http.empty(), server.output());
  const std::string log = server.output();
  const size_t at = log.find("Server grpc url grpc://");
  REQUIRE(at != std::string::npos);
  const std::string grpc = fmt::format("grpc://127.0.0.1:{}", std::stoi(log.substr(log.find(':', at + 23) + 1)));
  const std::string client = RANKSERVE_CLIENT_BIN;
  const std::string bar(32, '=');

  for (const std::string& url : {grpc, http}) {
    INFO(url);
    const auto nemo = run(fmt::format("{} --url {} --prompts '1 2 3 4 5' 'Monday Tuesday' --output-len 5", client, url), 120s);
    INFO(nemo.output);
    CHECK(nemo.code == 0);
    CHECK(nemo.output.find(bar + "\n1 2 3 4 5 6 7 8 9 10\n") != std::string::npos);
    CHECK(nemo.output.find(bar + "\nMonday Tuesday Wednesday Thursday Friday Saturday Sunday\n") != std::string::npos);
    const auto opt = run(fmt::format("{} --server-url {} --input 'January February' --output-length 2", client, url), 120s);
    INFO(opt.output);
    CHECK(opt.code == 0);
    CHECK(opt.output.find("output: ['January February March April']") != std::string::npos);
    const auto streamed = run(fmt::format("{} --url {} --prompts 'A B C' --output-len 3 --stream", client, url), 120s);
    INFO(streamed.output);
    CHECK(streamed.code == 0);
    CHECK(streamed.output.find(bar + "\nA B C D E F\n") != std::string::npos);
  }
  const auto refused = run(fmt::format("{} --url {} --protocol openai --prompts x", client, grpc), 60s);
  CHECK(refused.code == 2);
  CHECK(refused.output.find("--protocol openai and openai-chat need an http:// --url") != std::string::npos);
  const auto no_server = run(fmt::format("{} --url grpc://127.0.0.1:1 --init-timeout-s 2 --wait-only", client), 60s);
  CHECK(no_server.code == 6);
  CHECK(no_server.output.find("not ready within --init-timeout-s=2") != std::string::npos);
  server.signal(SIGTERM);
  CHECK(server.wait_for(60s).has_value());
  run(fmt::format("rm -rf {}", dir), 10s);
}
