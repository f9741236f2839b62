// The process environment as a value, so topology code can be fed captured dumps in tests.
// Only commands/main.cpp reads the real environment (capture_environment).
#pragma once

#include <map>
#include <optional>
#include <string>

namespace rankserve::launcher {

using EnvMap = std::map<std::string, std::string>;

EnvMap capture_environment();

inline std::optional<std::string> lookup(const EnvMap& env, const std::string& key) {
  auto it = env.find(key);
  if (it == env.end()) return std::nullopt;
  return it->second;
}

}  // namespace rankserve::launcher
