// clients tier: rankserve-client keeps its deadlines when the network does not answer.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <string>

#include "tests/support/process.h"

using namespace std::chrono_literals;
using rankserve::testing::run;

namespace {

const std::string kClient = RANKSERVE_CLIENT_BIN;

}  // namespace

TEST_CASE("the client's readiness wait ends at --init-timeout-s even when name lookups hang") {
  // getaddrinfo takes 30 s per call under the shim; a 3 s deadline must still end the wait, with an
  // error that names the deadline (the old client waited for every lookup to return).
  const auto started = std::chrono::steady_clock::now();
  const auto r = run(fmt::format("LD_PRELOAD={} {} --url http://no-such-host.invalid:8000 --init-timeout-s 3 --wait-only",
                                 RANKSERVE_SLOW_GETADDRINFO, kClient),
                     25s);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  INFO(r.output);
  CHECK(r.code == 6);  // docs/exit-codes.md: runtime
  CHECK(r.output.find("not ready within --init-timeout-s=3") != std::string::npos);
  CHECK(r.output.find("no answer before the deadline") != std::string::npos);
  CHECK(took < 20);  // against a hang only: the deadline is 3 s, each lookup 30 s
}

TEST_CASE("a numeric address needs no name lookup") {
  // Nothing listens on port 1: the answer is a refused connection, not a lookup that hangs.
  const auto r = run(fmt::format("LD_PRELOAD={} {} --url http://127.0.0.1:1 --init-timeout-s 2 --wait-only",
                                 RANKSERVE_SLOW_GETADDRINFO, kClient),
                     25s);
  INFO(r.output);
  CHECK(r.code == 6);  // docs/exit-codes.md: runtime
  CHECK(r.output.find("Connection refused") != std::string::npos);
}

TEST_CASE("--url with a port past 65535 is a usage error naming the flag") {
  const auto r = run(fmt::format("{} --url http://127.0.0.1:70000 --wait-only", kClient), 25s);
  INFO(r.output);
  CHECK(r.code != 0);
  CHECK(r.output.find("--url=http://127.0.0.1:70000 is not http[s]://host[:port]") != std::string::npos);
}
