#include "launcher/options.h"

#include <doctest/doctest.h>

#include "runtime/core/error.h"

using namespace rankserve;
using namespace rankserve::launcher;

TEST_CASE("command line beats environment beats default") {
  auto parsed = parse_options({"--tp", "2"}, {{"RANKSERVE_TP", "4"}, {"RANKSERVE_PP", "2"}});
  CHECK(parsed.options.tp_size == 2);
  CHECK(parsed.options.pp_size == 2);
  CHECK(parsed.options.timeout_s == 300);
  CHECK(parsed.options.command == "check");
}

TEST_CASE("accepts the OPT example's --number-of-nodes and --number-of-gpus as aliases") {
  auto parsed = parse_options({"--number-of-nodes", "2", "--number-of-gpus", "4"}, {});
  CHECK(parsed.options.nodes == 2);
  CHECK(parsed.options.gpus == "4");
  CHECK_THROWS_WITH_AS(parse_options({"--nodes", "2", "--number-of-nodes", "3"}, {}),
                       doctest::Contains("--number-of-nodes=3 contradicts --nodes=2"), Error);
}

TEST_CASE("boolean switches read 1/0 from the environment and reject anything else by name") {
  CHECK(parse_options({}, {{"RANKSERVE_DRY_RUN", "1"}}).options.dry_run);
  CHECK_FALSE(parse_options({}, {{"RANKSERVE_DRY_RUN", "0"}}).options.dry_run);
  CHECK_THROWS_WITH_AS(parse_options({}, {{"RANKSERVE_DRY_RUN", "maybe"}}), doctest::Contains("RANKSERVE_DRY_RUN=maybe"), Error);
}

TEST_CASE("malformed values are usage errors that name the option") {
  try {
    parse_options({"--tp", "two"}, {});
    FAIL("accepted --tp two");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::usage);
    CHECK(std::string(e.what()).find("tp") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(parse_options({}, {{"RANKSERVE_TIMEOUT", "soon"}}), doctest::Contains("timeout"), Error);
  CHECK_THROWS_AS(parse_options({"--no-such-flag"}, {}), Error);
}

TEST_CASE("help lists every option with its environment mirror") {
  auto parsed = parse_options({"--help"}, {});
  CHECK(parsed.help);
  for (const char* flag : {"--nodes", "--gpus", "--rank", "--head-url", "--tp", "--pp", "--timeout", "--dry-run",
                           "--advertise-address", "--store-port", "--k8s-service", "RANKSERVE_"}) {
    CHECK(parsed.help_text.find(flag) != std::string::npos);
  }
}
