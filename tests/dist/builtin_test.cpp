// dist tier: the built-in model (scripts/train_builtin.py, trained at build time, a NeMo checkpoint
// saved at TP 2) answers what it was trained on, the same at every layout and from every DP copy.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <string>
#include <vector>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::Process;
using rankserve::testing::run;
namespace json = boost::json;

namespace {

const std::string kBin = RANKSERVE_BIN;
const std::string kClient = RANKSERVE_CLIENT_BIN;

struct Expected {
  const char* prompt;
  const char* continuation;  // greedy, as many words as it has
};
constexpr Expected kAnswers[] = {
    {"1 2 3 4 5", " 6 7 8 9 10"},
    {"Monday Tuesday", " Wednesday Thursday Friday"},
    {"January February March", " April May June"},
    {"A B C", " D E F"},
    {"10 20 30", " 40 50 60"},
    {"x y x y", " x y x y"},
};

int words(const char* text) {
  int n = 0;
  for (const char* c = text; *c; ++c) n += *c == ' ';
  return n;
}

}  // namespace

TEST_CASE("the built-in model continues counting, weekdays, months, letters and motifs at every TP/PP layout") {
  for (const char* layout : {"--gpus 1", "--gpus 2 --tp 2", "--gpus 2 --pp 2", "--gpus 4 --tp 2 --pp 2"}) {
    for (const Expected& e : kAnswers) {
      auto r = run(fmt::format("{} generate {} --model-path builtin --prompt '{}' --max-tokens {} --json --timeout 60", kBin,
                               layout, e.prompt, words(e.continuation)),
                   120s);
      INFO(layout << " '" << e.prompt << "': " << r.output);
      REQUIRE(r.code == 0);
      const size_t line = r.output.find("{\"prompt_ids\"");
      REQUIRE(line != std::string::npos);
      const json::value v = json::parse(r.output.substr(line, r.output.find('\n', line) - line));
      CHECK(std::string(v.at("text").as_string()) == std::string(e.prompt) + e.continuation);
    }
  }
}

TEST_CASE("serve without --model-path serves the built-in model as GPT, the same answer from both data-parallel copies") {
  const std::string dir = fmt::format("/tmp/rankserve-builtin-{}", ::getpid());
  run(fmt::format("rm -rf {0} && mkdir -p {0}", dir), 10s);
  Process server(fmt::format(
      "exec {} serve --gpus 4 --tp 2 --http-port 0 --metrics-port -1 --url-file {}/url --timeout 60 --log-level debug", kBin,
      dir));
  const std::string url = rankserve::testing::wait_for_file_word(dir + "/url", 180s);
  INFO(server.output());
  REQUIRE(!url.empty());
  // Each sample of a batch joins the least-loaded copy in turn, so both copies answer every batch.
  for (int i = 0; i < 2; ++i) {
    auto r = run(fmt::format("{} --url {} --prompts '1 2 3 4 5' 'Monday Tuesday' 'A B C' --output-len 3", kClient, url), 120s);
    INFO(r.output);
    REQUIRE(r.code == 0);
    const std::string bar(32, '=');
    CHECK(r.output.find(bar + "\n1 2 3 4 5 6 7 8\n") != std::string::npos);
    CHECK(r.output.find(bar + "\nMonday Tuesday Wednesday Thursday Friday\n") != std::string::npos);
    CHECK(r.output.find(bar + "\nA B C D E F\n") != std::string::npos);
  }
  auto opt_form = run(fmt::format("{} --server-url {} --input 'January February' --output-length 2", kClient, url), 120s);
  CHECK(opt_form.output.find("output: ['January February March April']") != std::string::npos);
  CHECK(server.output().find("served as 'GPT': 2 copies x ") != std::string::npos);
  CHECK(server.output().find("to copy 0") != std::string::npos);  // rank 0 logs each join's copy at debug
  CHECK(server.output().find("to copy 1") != std::string::npos);
  CHECK(server.output().find("builtin.nemo (nemo_gpt)") != std::string::npos);
  server.signal(SIGTERM);
  CHECK(server.wait_for(60s).has_value());
  run(fmt::format("rm -rf {}", dir), 10s);
}
