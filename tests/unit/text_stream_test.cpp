#include "runtime/serving/text_stream.h"

#include <doctest/doctest.h>

#include "tests/support/serving_fixtures.h"

using namespace rankserve::runtime;
using rankserve::testing::bytes_tokenizer;

namespace {

struct Streamed {
  std::vector<std::string> pieces;
  std::string joined;
  bool stopped = false;
};

Streamed stream(std::string_view text, std::vector<std::string> stop, bool keep_stop) {
  TextStream s(bytes_tokenizer(), std::move(stop), keep_stop);
  Streamed out;
  for (unsigned char c : text) {
    auto piece = s.push(c);
    out.pieces.push_back(piece.text);
    out.joined += piece.text;
    if (piece.stopped) {
      out.stopped = true;
      break;
    }
  }
  out.joined += s.finish();
  return out;
}

}  // namespace

TEST_CASE("text without end strings streams through whole") {
  Streamed s = stream("hello world", {}, false);
  CHECK(s.joined == "hello world");
  CHECK_FALSE(s.stopped);
  CHECK(s.pieces[0] == "h");
}

TEST_CASE("a multi-byte character is released only when complete") {
  Streamed s = stream(
      "a\xC3\xA9"
      "b",
      {}, false);  // a é b
  CHECK(s.pieces == std::vector<std::string>{"a", "", "\xC3\xA9", "b"});
}

TEST_CASE("an end string cuts the text before it when not kept") {
  Streamed s = stream("one two\n\nthree", {"\n\n"}, false);
  CHECK(s.stopped);
  CHECK(s.joined == "one two");
}

TEST_CASE("an end string stays in the text when kept (NeMo's end_strings)") {
  Streamed s = stream("1 2 3 4<|endoftext|> 5", {"<|endoftext|>"}, true);
  CHECK(s.stopped);
  CHECK(s.joined == "1 2 3 4<|endoftext|>");
}

TEST_CASE("text that may begin an end string is held back, then released when it does not") {
  Streamed s = stream("ab<|x", {"<|endoftext|>"}, false);
  CHECK(s.pieces == std::vector<std::string>{"a", "b", "", "", "<|x"});
  CHECK_FALSE(s.stopped);
  // Held back at the end of the stream, it is released by finish().
  Streamed t = stream("ab<|end", {"<|endoftext|>"}, false);
  CHECK(t.joined == "ab<|end");
}

TEST_CASE("the earliest of several end strings wins") {
  Streamed s = stream("x STOP y END", {"END", "STOP"}, false);
  CHECK(s.joined == "x ");
}

TEST_CASE("empty end strings are ignored") {
  Streamed s = stream("abc", {""}, false);
  CHECK(s.joined == "abc");
  CHECK_FALSE(s.stopped);
}

TEST_CASE("each piece carries its token's own text, a partial character as U+FFFD, also after a stop") {
  TextStream s(bytes_tokenizer(), {"b"}, false);
  const std::string yen = "\xC2\xA5";
  auto first = s.push(static_cast<unsigned char>(yen[0]));
  CHECK(first.text.empty());
  CHECK(first.token == "\xEF\xBF\xBD");
  auto second = s.push(static_cast<unsigned char>(yen[1]));
  CHECK(second.text == yen);
  CHECK(second.token == "\xEF\xBF\xBD");
  auto stop = s.push('b');
  CHECK(stop.stopped);
  CHECK(stop.token == "b");
  auto after = s.push('c');
  CHECK(after.stopped);
  CHECK(after.text.empty());
  CHECK(after.token == "c");
}
