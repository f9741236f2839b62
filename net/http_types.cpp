#include "net/http_types.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace rankserve::net {

std::optional<std::string_view> ServerRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> header_list(std::string_view value) {
  std::vector<std::string_view> items;
  for (size_t start = 0; start <= value.size();) {
    const size_t comma = std::min(value.find(',', start), value.size());
    std::string_view item = value.substr(start, comma - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) items.push_back(item);
    start = comma + 1;
  }
  return items;
}

HttpError field_error(std::string_view field, std::string_view what) {
  ErrorDetail detail;
  detail.param = std::string(field);
  return HttpError(ErrorCode::bad_request, fmt::format("request: {}: {}", field, what), std::move(detail));
}

}  // namespace rankserve::net
