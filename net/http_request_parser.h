// The Beast request parser of one HTTP/1.1 request with the limits rankserve's connections set on
// it. Used by the session loop in http_server.cpp and by the HTTP parser fuzzer, so both run the
// same settings.
#pragma once

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace rankserve::net {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A request header larger than this gets 431: ours are small; the limit bounds memory per connection.
inline constexpr uint32_t kMaxHeaderBytes = 16 * 1024;

// Before the header is read: the header limit, and no body limit yet (with one set now, Beast would
// fail the header read on a large Content-Length before the request's path, and so the shape of
// its 413, is known).
void limit_request_header(RequestParser& parser);

// Once the header is in: false when its Content-Length already exceeds `max_body_bytes` (answer 413
// without reading the body); else sets the body limit, which also counts chunked bodies as they arrive.
bool limit_request_body(RequestParser& parser, std::size_t max_body_bytes);

// A request whose framing rankserve refuses before reading its body: the status (400 or 501) and why.
struct FramingError {
  int status = 400;
  std::string message;
};

// RFC 9112 §6.1 and §6.3 on a request's Transfer-Encoding, which Beast leaves to us (it frames a
// body as chunked only when chunked is the last coding, and otherwise ignores the header in favour
// of Content-Length: a request-smuggling gap behind a proxy that reads it the other way). Accepted:
// no Transfer-Encoding, or exactly `chunked` without Content-Length. Both headers, an empty list,
// `chunked` twice or not last: 400. Any other coding (gzip, `gzip, chunked`): 501.
std::optional<FramingError> transfer_encoding_error(const boost::beast::http::fields& fields);

}  // namespace rankserve::net
