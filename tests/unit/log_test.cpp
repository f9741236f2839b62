#include "core/log.h"
#include "core/plural.h"
#include "core/timestamp.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <regex>
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

TEST_CASE("every log line starts with a UTC timestamp, and a line without rank or host has no empty brackets") {
  CHECK(utc_timestamp(std::chrono::system_clock::time_point(std::chrono::milliseconds(1500))) == "1970-01-01T00:00:01.500Z");
  CHECK(utc_timestamp(std::chrono::system_clock::time_point(std::chrono::seconds(1796175476))) == "2026-12-02T01:37:56.000Z");
  const log::Config before = log::config();  // NOLINT(performance-unnecessary-copy-initialization)
  const std::regex stamp(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )");
  log::Config text = before;
  text.json = false;
  text.rank = -1;
  text.host = "";
  log::configure(text);
  const std::string bare = captured_stderr([] { log::warn("no host yet"); });
  text.host = "n1";
  text.rank = 3;
  text.world_size = 8;
  log::configure(text);
  const std::string ranked = captured_stderr([] { log::warn("ranked"); });
  log::Config json = text;
  json.json = true;
  log::configure(json);
  const std::string json_line = captured_stderr([] { log::warn("as json"); });
  log::configure(before);
  CHECK(std::regex_search(bare, stamp));
  CHECK(bare.substr(25) == "WARN no host yet\n");
  CHECK(std::regex_search(ranked, stamp));
  CHECK(ranked.substr(25) == "[r3/8 n1] WARN ranked\n");
  const std::string time(boost::json::parse(json_line).at("time").as_string());
  CHECK(std::regex_search(time + " ", stamp));
}

TEST_CASE("count_of says one thing in the singular and every other count in the plural") {
  CHECK(count_of(1, "node", "nodes") == "1 node");
  CHECK(count_of(2, "node", "nodes") == "2 nodes");
  CHECK(count_of(0, "worker", "workers") == "0 workers");
  CHECK(count_of(1, "copy", "copies") == "1 copy");
  CHECK(count_of(3, "copy", "copies") == "3 copies");
}
