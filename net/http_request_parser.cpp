#include "net/http_request_parser.h"

namespace rankserve::net {

void limit_request_header(RequestParser& parser) {
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(boost::none);
}

bool limit_request_body(RequestParser& parser, std::size_t max_body_bytes) {
  const auto length = parser.content_length();
  if (length && *length > max_body_bytes) return false;
  parser.body_limit(max_body_bytes);
  return true;
}

}  // namespace rankserve::net
