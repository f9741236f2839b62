#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "net/sse_parser.h"

using rankserve::net::SseEvent;
using rankserve::net::SseParser;

namespace {

std::vector<std::string> data_of(const std::vector<SseEvent>& events) {
  std::vector<std::string> out;
  for (const auto& event : events) out.push_back(event.data);
  return out;
}

// Feeds `stream` in pieces of `piece` bytes and collects every event.
std::vector<SseEvent> feed_in_pieces(const std::string& stream, size_t piece) {
  SseParser parser;
  std::vector<SseEvent> all;
  for (size_t i = 0; i < stream.size(); i += piece) {
    for (auto& event : parser.feed(std::string_view(stream).substr(i, piece))) all.push_back(std::move(event));
  }
  CHECK_FALSE(parser.has_partial_event());
  return all;
}

}  // namespace

TEST_CASE("an SSE frame is dispatched at its blank line and not before") {
  SseParser parser;
  CHECK(parser.feed("data: {\"text_output\": \"Hel").empty());
  CHECK(parser.has_partial_event());
  CHECK(parser.feed("lo\"}\n").empty());
  const auto events = parser.feed("\n");
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == R"({"text_output": "Hello"})");
  CHECK(events[0].event.empty());
  CHECK_FALSE(parser.has_partial_event());
}

TEST_CASE("SSE frames give the same events whatever the chunk boundaries") {
  const std::string stream =
      "data: one\r\n\r\n"
      ": keep-alive comment\n\n"
      "event: error\ndata: {\"error\": \"boom\"}\n\n"
      "data: first line\ndata: second line\r\rdata: [DONE]\n\n";
  for (size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    CAPTURE(piece);
    const auto events = feed_in_pieces(stream, piece);
    CHECK(data_of(events) == std::vector<std::string>{"one", R"({"error": "boom"})", "first line\nsecond line", "[DONE]"});
    REQUIRE(events.size() == 4);
    CHECK(events[1].event == "error");
    CHECK(events[2].event.empty());  // the event type does not outlive its event
  }
}

TEST_CASE("a CRLF split between two chunks ends one line, not two") {
  SseParser parser;
  CHECK(parser.feed("data: a\r").empty());
  CHECK(parser.feed("\ndata: b\r").empty());
  const auto events = parser.feed("\n\r\n");
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "a\nb");
}

TEST_CASE("SSE comments, blank events and unknown fields dispatch nothing") {
  SseParser parser;
  CHECK(parser.feed(":comment\n\n\n\nretry: 10\nfoo: bar\n\n").empty());
}

TEST_CASE("an SSE field keeps everything after the one space that follows its colon") {
  SseParser parser;
  const auto events = parser.feed("data:no space\n\ndata:  two spaces\n\ndata\n\nid: 7\ndata: x: y\n\n");
  REQUIRE(events.size() == 4);
  CHECK(events[0].data == "no space");
  CHECK(events[1].data == " two spaces");
  CHECK(events[2].data == "");  // "data" alone is an empty data line, still an event
  CHECK(events[3].data == "x: y");
  CHECK(events[3].id == "7");
}

TEST_CASE("a byte-order mark at the start of an SSE stream is skipped, even when split") {
  SseParser parser;
  CHECK(parser.feed("\xEF").empty());
  CHECK(parser.feed("\xBB").empty());
  const auto events = parser.feed(
      "\xBF"
      "data: x\n\n");
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "x");
}

TEST_CASE("an SSE stream cut inside an event reports a partial event") {
  SseParser parser;
  CHECK(parser.feed("data: {\"text_output\": \"a\"}\n").empty());
  CHECK(parser.has_partial_event());
}
