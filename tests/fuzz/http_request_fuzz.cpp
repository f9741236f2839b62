// The HTTP/1.1 request parser with the limits rankserve's connections use (net/http_request_parser.h),
// driven as the session loop in net/http_server.cpp drives it: the header with its limit, the
// Content-Length check against the body limit, then the body. Input: byte 0 picks how many bytes each
// read delivers (1..256, as a socket may split them), the rest is what the client sends.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http_request_parser.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;
namespace http = boost::beast::http;

namespace {

constexpr size_t kMaxBodyBytes = 1024;  // small (the server's default is 8 MiB) so inputs reach it

// Feeds `parser` from `wire` until `done` holds, each read adding at most `chunk` bytes to the
// bytes not yet consumed, as Beast's read loop does. False when the parser fails or the input ends.
template <typename Done>
bool feed(net::RequestParser& parser, std::string& buffered, std::string_view& wire, size_t chunk, Done done) {
  while (!done()) {
    boost::beast::error_code ec;
    const size_t used = buffered.empty() ? 0 : parser.put(boost::asio::buffer(buffered), ec);
    buffered.erase(0, used);
    if (ec && ec != http::error::need_more) return false;  // the server answers 400, 413 or 431
    if (!ec && used > 0) continue;
    if (wire.empty()) return false;  // the client stopped sending: the server times out or sees EOF
    const size_t n = std::min(chunk, wire.size());
    buffered.append(wire.substr(0, n));
    wire.remove_prefix(n);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return -1;
  const size_t chunk = static_cast<size_t>(data[0]) + 1;
  std::string_view wire = fuzz::as_text(data + 1, size - 1);
  std::string buffered;
  net::RequestParser parser;
  net::limit_request_header(parser);
  parser.eager(false);  // http::async_read_header
  if (!feed(parser, buffered, wire, chunk, [&] { return parser.is_header_done(); })) return 0;
  if (net::transfer_encoding_error(parser.get())) return 0;  // the server answers 400 or 501 without reading a body
  if (!net::limit_request_body(parser, kMaxBodyBytes)) {
    if (!parser.content_length() || *parser.content_length() <= kMaxBodyBytes) std::abort();  // refused a body within the limit
    return 0;
  }
  parser.eager(true);  // http::async_read
  if (!feed(parser, buffered, wire, chunk, [&] { return parser.is_done(); })) return 0;
  const auto& message = parser.get();
  if (message.body().size() > kMaxBodyBytes) std::abort();  // the limit let a larger body through
  if (message.target().size() + message.method_string().size() > net::kMaxHeaderBytes) std::abort();
  (void)message.keep_alive();
  return 0;
}
