#include "runtime/core/log.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <string>

using namespace rankserve;

namespace {

// What log::write printed on stderr while `body` ran.
template <typename F>
std::string captured_stderr(F body) {
  std::fflush(stderr);
  std::FILE* file = std::tmpfile();
  REQUIRE(file != nullptr);
  const int saved = ::dup(2);
  ::dup2(::fileno(file), 2);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string out;
  std::rewind(file);
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) out.push_back(static_cast<char>(c));
  std::fclose(file);
  return out;
}

}  // namespace

TEST_CASE("a JSON log line stays valid JSON when the message holds bytes that are not UTF-8") {
  // A copy, not a reference: configure() below overwrites what config() refers to.
  const log::Config before = log::config();  // NOLINT(performance-unnecessary-copy-initialization)
  log::Config json = before;
  json.json = true;
  json.rank = 0;
  json.world_size = 1;
  json.host = "n\xff";
  log::configure(json);
  const std::string line = captured_stderr([] { log::warn("http: GET /v2/models/{} -> 404 \"quoted\"\t\x01", "\xff\xfe"); });
  log::configure(before);
  const boost::json::value parsed = boost::json::parse(line);  // throws on invalid UTF-8 or escapes
  CHECK(parsed.at("level") == "WARN");
  CHECK(parsed.at("message").as_string() == "http: GET /v2/models/\xef\xbf\xbd\xef\xbf\xbd -> 404 \"quoted\"\t\x01");
  CHECK(parsed.at("host").as_string() == "n\xef\xbf\xbd");
}
