#include "runtime/serving/delivery.h"

#include <doctest/doctest.h>

#include "runtime/engine.h"
#include "tests/support/serving_fixtures.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::serving_request;
using rankserve::testing::sink_of;

namespace {

constexpr int kEos = 0;  // the NUL byte is the EOS of these cases

GenerationSettings stop_at(std::vector<std::string> stop, bool keep_stop) {
  GenerationSettings settings;
  settings.stop = std::move(stop);
  settings.keep_stop = keep_stop;
  return settings;
}

// Delivers `text` byte by byte until the request finishes; returns how many tokens were generated.
int deliver_text(ServingRequest& r, std::string_view text) {
  int generated = 0;
  for (unsigned char c : text) {
    const Delivered d = deliver_token(r, c, -0.5f, kEos);
    generated += d.generated ? 1 : 0;
    if (d.finished) break;
  }
  return generated;
}

}  // namespace

TEST_CASE("each token streams its own text and the continuation, and max tokens finishes with length") {
  auto r = serving_request(1, 2, 3);
  CHECK(deliver_text(*r, "abcdef") == 3);
  const auto& sink = sink_of(*r);
  REQUIRE(sink.tokens.size() == 3);
  CHECK(sink.tokens[0].id == 'a');
  CHECK(sink.tokens[0].token == "a");
  CHECK(sink.tokens[0].text == "a");
  CHECK(sink.tokens[0].logprob == doctest::Approx(-0.5f));
  REQUIRE(sink.finish);
  CHECK(sink.finish->reason == FinishReason::length);
  CHECK(sink.finish->prompt_tokens == 2);
  CHECK(sink.finish->completion_tokens == 3);
  CHECK(sink.text() == "abc");
}

TEST_CASE("a multi-byte character streams once complete: the token text is partial, the streamed text whole") {
  auto r = serving_request(1, 1, 8);
  deliver_text(*r, "\xC3\xA9!");  // é!
  const auto& sink = sink_of(*r);
  REQUIRE(sink.tokens.size() == 3);
  CHECK(sink.tokens[0].text.empty());
  CHECK(sink.tokens[1].text == "\xC3\xA9");
  CHECK(sink.tokens[2].text == "!");
  CHECK_FALSE(sink.finish);
}

TEST_CASE("a stop string ends the request with stop, cut from the text unless keep_stop") {
  auto cut = serving_request(1, 1, 32, stop_at({"##"}, false));
  CHECK(deliver_text(*cut, "ab#c##tail") == 6);
  REQUIRE(sink_of(*cut).finish);
  CHECK(sink_of(*cut).finish->reason == FinishReason::stop);
  CHECK(sink_of(*cut).finish->completion_tokens == 6);
  CHECK(sink_of(*cut).text() == "ab#c");

  auto kept = serving_request(2, 1, 32, stop_at({"##"}, true));
  deliver_text(*kept, "ab#c##tail");
  CHECK(sink_of(*kept).text() == "ab#c##");
}

TEST_CASE("text that may begin a stop string is held back, and released at the finish when none matched") {
  auto r = serving_request(1, 1, 3, stop_at({"xyz"}, false));
  deliver_text(*r, "axy");
  const auto& sink = sink_of(*r);
  REQUIRE(sink.tokens.size() == 3);
  CHECK(sink.tokens[0].text == "a");
  CHECK(sink.tokens[1].text.empty());
  CHECK(sink.tokens[2].text.empty());
  REQUIRE(sink.finish);
  CHECK(sink.finish->reason == FinishReason::length);
  CHECK(sink.finish->text == "xy");
}

TEST_CASE("EOS is a generated token without text that finishes with stop, unless the request ignores EOS") {
  auto r = serving_request(1, 1, 8);
  deliver_text(*r, "a");
  Delivered d = deliver_token(*r, kEos, -1.0f, kEos);
  CHECK(d.generated);
  CHECK(d.finished);
  const auto& sink = sink_of(*r);
  REQUIRE(sink.tokens.size() == 2);
  CHECK(sink.tokens[1].id == kEos);
  CHECK(sink.tokens[1].text.empty());
  CHECK(sink.tokens[1].token.empty());
  CHECK(sink.finish->reason == FinishReason::stop);
  CHECK(sink.finish->completion_tokens == 2);

  GenerationSettings ignore;
  ignore.ignore_eos = true;
  auto past = serving_request(2, 1, 8, ignore);
  d = deliver_token(*past, kEos, -1.0f, kEos);
  CHECK(d.generated);
  CHECK_FALSE(d.finished);
  CHECK(sink_of(*past).tokens[0].token == std::string(1, '\0'));
}

TEST_CASE("a failed sample finishes the request with a runtime error, a prefilling slot does nothing") {
  auto r = serving_request(1, 1, 8);
  Delivered d = deliver_token(*r, kNoToken, 0, kEos);
  CHECK_FALSE(d.generated);
  CHECK_FALSE(d.finished);
  CHECK(sink_of(*r).tokens.empty());
  d = deliver_token(*r, kSamplingFailed, 0, kEos);
  CHECK_FALSE(d.generated);
  CHECK(d.finished);
  const auto& sink = sink_of(*r);
  REQUIRE(sink.finish);
  CHECK(sink.finish->reason == FinishReason::error);
  CHECK(sink.finish->error_code == ErrorCode::runtime);
  CHECK(sink.finish->error_message.rfind("sampling: no next token could be drawn", 0) == 0);
}

TEST_CASE("a finished request takes no more tokens and is finished once") {
  auto r = serving_request(1, 1, 1);
  deliver_text(*r, "a");
  const Delivered d = deliver_token(*r, 'b', 0, kEos);
  CHECK_FALSE(d.generated);
  CHECK_FALSE(d.finished);
  FinishEvent late;
  late.reason = FinishReason::error;
  finish_request(*r, late);
  CHECK(sink_of(*r).tokens.size() == 1);
  CHECK(sink_of(*r).num_finishes == 1);
  CHECK(sink_of(*r).finish->reason == FinishReason::length);
}
