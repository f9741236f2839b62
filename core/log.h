// Rank-prefixed logging: "<UTC time> [r3/8 host] LEVEL message" on stderr, or one JSON object per line.
// Configure once at start-up, before any thread starts; logging itself is thread-safe.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace rankserve::log {

enum class Level { debug, info, warn, error, fatal };

struct Config {
  Level level = Level::info;
  bool json = false;
  int rank = -1;  // -1 before the topology is known: the prefix shows the host only
  int world_size = 0;
  std::string host;
  bool all_ranks_info = false;  // info is printed by rank 0 only unless this is set
};

// Not thread-safe: call before starting threads (main, and again once the topology is known).
void configure(const Config& config);
const Config& config();

// Parses "debug|info|warn|error"; throws Error(usage) naming `flag` otherwise.
Level parse_level(std::string_view text, std::string_view flag);

bool enabled(Level level);
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void fatal(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::fatal, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace rankserve::log
