// The Content-Encoding decoder (net/content_encoding.cpp) on outside bytes. Besides the sanitizers it
// checks the properties the HTTP session relies on: an accepted body is never larger than the limit,
// a refusal is 400, 413 or 415 and leaves the body as sent, and what rankserve gzips inflates back.
// Input: byte 0 picks the coding (bits 0-1) and the limit (bits 2-7, 1 KiB steps), the rest is the body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/content_encoding.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr std::string_view kCodings[] = {"gzip", "deflate", "x-gzip", "br"};
  const std::string_view coding = kCodings[data[0] & 3];
  const std::size_t limit = static_cast<std::size_t>(data[0] >> 2) * 1024;
  const std::string sent(fuzz::as_text(data + 1, size - 1));
  std::string body = sent;
  const auto failed = net::decode_content_encoding(coding, body, limit);
  if (!failed && body.size() > limit) std::abort();  // an accepted body within the limit
  if (failed) {
    if (failed->status != 400 && failed->status != 413 && failed->status != 415) std::abort();
    if (body != sent) std::abort();  // a refusal leaves the body alone
    if ((failed->status == 415) != (coding == "br")) std::abort();
  }
  if (sent.size() <= limit) {
    std::string round_trip = net::gzip_compress(sent);
    if (net::decode_content_encoding("gzip", round_trip, limit) || round_trip != sent) std::abort();
  }
  return 0;
}
