#include "net/http_request_parser.h"

#include <fmt/format.h>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <string_view>
#include <vector>

#include "net/http_types.h"

namespace rankserve::net {

namespace beast = boost::beast;
namespace http = boost::beast::http;

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

std::optional<FramingError> transfer_encoding_error(const http::fields& fields) {
  std::vector<std::string_view> codings;
  bool present = false;
  std::string joined;  // every value as sent, for the message
  const auto [first, last] = fields.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    present = true;
    const std::string_view value = it->value();
    joined += joined.empty() ? "" : ", ";
    joined += value;
    for (std::string_view item : header_list(value)) codings.push_back(item);
  }
  if (!present) return std::nullopt;
  if (fields.find(http::field::content_length) != fields.end()) {
    return FramingError{400,
                        "http: the request has both Transfer-Encoding and Content-Length; expected one of them "
                        "(RFC 9112 §6.3: send a chunked body without Content-Length)"};
  }
  const auto is_chunked = [](std::string_view coding) { return beast::iequals(coding, "chunked"); };
  const auto num_chunked = std::count_if(codings.begin(), codings.end(), is_chunked);
  if (codings.empty() || num_chunked > 1 || (num_chunked == 1 && !is_chunked(codings.back()))) {
    return FramingError{400, fmt::format("http: Transfer-Encoding '{}' does not end in one 'chunked'; expected exactly 'chunked' "
                                         "(RFC 9112 §6.3)",
                                         joined)};
  }
  if (codings.size() != 1 || num_chunked != 1) {
    return FramingError{501, fmt::format("http: Transfer-Encoding '{}' is not supported; expected exactly 'chunked' "
                                         "(send the body chunked or with Content-Length, uncompressed)",
                                         joined)};
  }
  return std::nullopt;
}

}  // namespace rankserve::net
