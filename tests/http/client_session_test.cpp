// http tier: rankserve-client's server conversation (client/session.h) against an in-process
// server: which readiness answers end the wait at once.
#include "client/session.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>

#include "client/options.h"
#include "core/error.h"
#include "tests/http/test_client.h"

using namespace rankserve;
using namespace rankserve::testing;

namespace {

client::ClientOptions client_options(const std::string& url, client::StreamProtocol protocol) {
  client::ClientOptions o;
  o.url = url;
  o.protocol = protocol;
  o.init_timeout_s = 60;  // a wait that retried these answers would outlast the test's timeout
  return o;
}

// The message wait_ready throws, and how long it took (seconds).
std::pair<std::string, double> wait_error(const client::ClientOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  try {
    client::ClientSession(options).wait_ready();
  } catch (const Error& e) {
    return {e.what(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
  }
  FAIL("wait_ready returned for a server that refuses the client");
  return {};
}

}  // namespace

TEST_CASE("the client's readiness wait ends at once on 401 (no key for an --api-key server) and on 404") {
  net::ServerOptions o = TestServer::default_options();
  o.api_key = "s3cret";
  TestServer t(gpt_model_info(), o);
  const std::string url = fmt::format("http://127.0.0.1:{}", t.server.http_port());

  // OpenAI's readiness probe is GET /v1/models, which needs the key.
  const auto [unauthorized, took] = wait_error(client_options(url, client::StreamProtocol::openai));
  CHECK(unauthorized.find("/v1/models answered 401") != std::string::npos);
  CHECK(unauthorized.find("--api-key") != std::string::npos);
  CHECK(took < 30);  // against a retry until --init-timeout-s=60 only

  client::ClientOptions with_key = client_options(url, client::StreamProtocol::openai);
  with_key.api_key = "s3cret";
  CHECK_NOTHROW(client::ClientSession(with_key).wait_ready());

  // A URL whose path prefix the server does not serve.
  const auto [not_found, took_404] = wait_error(client_options(url + "/not/here", client::StreamProtocol::kserve));
  CHECK(not_found.find("/v2/health/ready answered 404") != std::string::npos);
  CHECK(took_404 < 30);
}
