#include "launcher/hostlist.h"

#include <fmt/format.h>

#include <charconv>

#include "core/error.h"

namespace rankserve::launcher {
namespace {

[[noreturn]] void malformed(std::string_view variable, std::string_view text, std::string_view why) {
  throw Error(ErrorCode::usage, fmt::format("topology: {}={} is not a valid list: {}", variable, text, why));
}

bool parse_uint(std::string_view text, long& value) {
  if (text.empty() || text.size() > 9) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

// Splits on commas that are not inside brackets.
std::vector<std::string_view> split_top_level(std::string_view text, std::string_view variable, std::string_view all) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '[') ++depth;
    if (text[i] == ']' && --depth < 0) malformed(variable, all, "unbalanced ']'");
    if (text[i] == ',' && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) malformed(variable, all, "unbalanced '['");
  parts.push_back(text.substr(start));
  return parts;
}

// Expands the contents of one bracket group ("01-04,07") into zero-padded strings.
std::vector<std::string> expand_ranges(std::string_view ranges, std::string_view variable, std::string_view all) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= ranges.size()) {
    size_t comma = ranges.find(',', start);
    std::string_view item = ranges.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t dash = item.find('-');
    std::string_view lo_text = item.substr(0, dash);
    std::string_view hi_text = dash == std::string_view::npos ? lo_text : item.substr(dash + 1);
    long lo = 0, hi = 0;
    if (!parse_uint(lo_text, lo) || !parse_uint(hi_text, hi)) {
      malformed(variable, all, fmt::format("'{}' is not a number or a range like 01-04", item));
    }
    if (hi < lo) malformed(variable, all, fmt::format("range '{}' runs backwards", item));
    if (hi - lo > 100000) malformed(variable, all, fmt::format("range '{}' is too large", item));
    const int width = static_cast<int>(lo_text.size());
    for (long n = lo; n <= hi; ++n) out.push_back(fmt::format("{:0{}d}", n, width));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// Expands one host expression that may hold several bracket groups.
void expand_host(std::string_view expr, std::string_view variable, std::string_view all, std::vector<std::string>& out) {
  size_t open = expr.find('[');
  if (open == std::string_view::npos) {
    out.emplace_back(expr);
    return;
  }
  size_t close = expr.find(']', open);
  if (close == std::string_view::npos) malformed(variable, all, "unbalanced '['");
  std::string_view prefix = expr.substr(0, open);
  std::string_view rest = expr.substr(close + 1);
  for (const std::string& number : expand_ranges(expr.substr(open + 1, close - open - 1), variable, all)) {
    std::vector<std::string> tails;
    expand_host(rest, variable, all, tails);
    for (const std::string& tail : tails) out.push_back(fmt::format("{}{}{}", prefix, number, tail));
  }
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view text, std::string_view variable) {
  if (text.empty()) malformed(variable, text, "it is empty");
  std::vector<std::string> hosts;
  for (std::string_view part : split_top_level(text, variable, text)) {
    if (part.empty()) malformed(variable, text, "empty host name between commas");
    expand_host(part, variable, text, hosts);
  }
  return hosts;
}

std::vector<int> expand_tasks_per_node(std::string_view text, std::string_view variable) {
  if (text.empty()) malformed(variable, text, "it is empty");
  std::vector<int> counts;
  for (std::string_view part : split_top_level(text, variable, text)) {
    long count = 0, repeat = 1;
    size_t paren = part.find("(x");
    std::string_view count_text = part.substr(0, paren);
    if (paren != std::string_view::npos) {
      if (part.back() != ')') malformed(variable, text, fmt::format("'{}' should look like 2(x3)", part));
      if (!parse_uint(part.substr(paren + 2, part.size() - paren - 3), repeat) || repeat < 1) {
        malformed(variable, text, fmt::format("'{}' has a bad repeat count", part));
      }
    }
    if (!parse_uint(count_text, count) || count < 1) {
      malformed(variable, text, fmt::format("'{}' is not a positive task count", part));
    }
    if (repeat > 100000) malformed(variable, text, fmt::format("'{}' repeats too often", part));
    counts.insert(counts.end(), static_cast<size_t>(repeat), static_cast<int>(count));
  }
  return counts;
}

}  // namespace rankserve::launcher
