// Counts as a sentence says them: "1 node", "2 nodes", "1 copy", "3 copies".
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace rankserve {

inline std::string count_of(long long n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace rankserve
