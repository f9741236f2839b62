// The streaming loop's framing: engine events read together (one Generation::next() batch) go out in
// one chunk, for each streaming protocol. The fake delivers a whole request inside submit, so the
// handler's first read finds every event of it: the chunk counts do not depend on timing.
#include "net/stream_loop.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <boost/json.hpp>

#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

namespace {

// The chunks of a streamed answer to POST `target` with `body`, read on a raw connection.
std::vector<std::string> streamed_chunks(const TestServer& t, const std::string& target, const std::string& body) {
  const RawReply r = send_raw(t.server.http_port(), "POST " + target +
                                                        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                                        "Content-Type: application/json\r\nContent-Length: " +
                                                        std::to_string(body.size()) + "\r\n\r\n" + body);
  REQUIRE(r.status() == 200);
  REQUIRE(r.text.find("Transfer-Encoding: chunked") != std::string::npos);
  return http_chunks(r.body());
}

TestServer& deliver_in_submit(TestServer& t, int fail_after_tokens = -1) {
  FakeScript s;
  s.deliver_in_submit = true;
  s.fail_after_tokens = fail_after_tokens;
  t.service.set_script(s);
  return t;
}

json::value choice_of(const std::string& event) { return json::parse(event).at("choices").as_array().at(0); }

}  // namespace

TEST_CASE("generate_stream writes the events read together as one chunk") {
  TestServer t;
  const auto chunks =
      streamed_chunks(deliver_in_submit(t), "/v2/models/GPT/generate_stream", R"({"text_input":"hello","max_tokens":3})");
  REQUIRE(chunks.size() == 1);
  const auto events = sse_data(chunks[0]);
  REQUIRE(events.size() == 4);
  CHECK(json::parse(events[0]).at("text_output") == " w0");
  CHECK(json::parse(events[2]).at("text_output") == " w2");
  CHECK(json::parse(events[3]).at("finish_reason") == "length");
}

TEST_CASE("a streamed completion writes its tokens read together as one chunk, then usage and [DONE] as another") {
  TestServer t;
  const auto chunks =
      streamed_chunks(deliver_in_submit(t), "/v1/completions",
                      R"({"prompt":"hi","max_tokens":3,"logprobs":0,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(chunks.size() == 2);
  const auto events = sse_data(chunks[0]);
  REQUIRE(events.size() == 4);
  // Each token's logprobs are its own, though the sample already holds all three when they are framed.
  for (int i = 0; i < 3; ++i) {
    const json::value choice = choice_of(events[static_cast<size_t>(i)]);
    const std::string token = fmt::format(" w{}", i);
    CHECK(choice.at("text").as_string() == token);
    CHECK(choice.at("logprobs").at("tokens") == json::array{token});
    CHECK(choice.at("logprobs").at("text_offset") == json::array{3 * i});
  }
  CHECK(choice_of(events[3]).at("finish_reason") == "length");
  const auto trailer = sse_data(chunks[1]);
  REQUIRE(trailer.size() == 2);
  CHECK(json::parse(trailer[0]).at("usage").at("completion_tokens") == 3);
  CHECK(trailer[1] == "[DONE]");
}

TEST_CASE("a streamed chat writes the role deltas, then the events read together, then usage and [DONE], a chunk each") {
  TestServer t;
  const auto chunks = streamed_chunks(
      deliver_in_submit(t), "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2,"n":2,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(chunks.size() == 3);
  const auto roles = sse_data(chunks[0]);
  REQUIRE(roles.size() == 2);
  CHECK(choice_of(roles[1]).at("delta").at("role") == "assistant");
  CHECK(choice_of(roles[1]).at("index") == 1);
  // Both choices were submitted before the handler read any event: their tokens come in one chunk.
  const auto events = sse_data(chunks[1]);
  REQUIRE(events.size() == 6);
  CHECK(choice_of(events[0]).at("delta").at("content") == " w0");
  CHECK(choice_of(events[2]).at("finish_reason") == "length");
  CHECK(choice_of(events[5]).at("index") == 1);
  const auto trailer = sse_data(chunks[2]);
  REQUIRE(trailer.size() == 2);
  CHECK(json::parse(trailer[0]).at("usage").at("completion_tokens") == 4);
  CHECK(trailer[1] == "[DONE]");
}

TEST_CASE("a sample failing within a batch: the events before the failure go out, then the error event") {
  TestServer t;
  const auto chunks =
      streamed_chunks(deliver_in_submit(t, 2), "/v1/completions", R"({"prompt":"hi","max_tokens":5,"stream":true})");
  REQUIRE(chunks.size() == 3);
  const auto tokens = sse_data(chunks[0]);
  REQUIRE(tokens.size() == 2);
  CHECK(choice_of(tokens[1]).at("text") == " w1");
  const auto error = sse_data(chunks[1]);
  REQUIRE(error.size() == 1);
  CHECK(json::parse(error[0]).at("error").at("message") == "runtime: rank 1 (host n2) failed: connection reset");
  CHECK(sse_data(chunks[2]) == std::vector<std::string>{"[DONE]"});
}
