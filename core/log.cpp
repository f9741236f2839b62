#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/error.h"
#include "core/timestamp.h"
#include "core/utf8.h"

namespace rankserve::log {
namespace {

Config g_config;  // written only by configure(), before threads start
std::mutex g_write_mutex;

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug: return "DEBUG";
    case Level::info: return "INFO";
    case Level::warn: return "WARN";
    case Level::error: return "ERROR";
    case Level::fatal: return "FATAL";
  }
  return "INFO";
}

// A JSON string's contents; bytes that are not UTF-8 (a request path or header quoted in a message)
// become U+FFFD, so every line stays valid JSON.
std::string json_escape(std::string_view raw) {
  std::string text;
  append_utf8_lossy(text, raw, /*final=*/true);
  std::string out;
  out.reserve(text.size() + 8);
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out;
}

std::string timestamp() { return utc_timestamp(std::chrono::system_clock::now()); }

}  // namespace

void configure(const Config& config) { g_config = config; }
const Config& config() { return g_config; }

Level parse_level(std::string_view text, std::string_view flag) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warn" || text == "warning") return Level::warn;
  if (text == "error") return Level::error;
  throw Error(ErrorCode::usage,
              fmt::format("options: {}={} is not a log level; expected debug, info, warn or error", flag, text));
}

bool enabled(Level level) {
  if (level < g_config.level) return false;
  if (level == Level::info || level == Level::debug) return g_config.rank <= 0 || g_config.all_ranks_info;
  return true;
}

void write(Level level, std::string_view message) {
  std::string line;
  const std::string time = timestamp();
  if (g_config.json) {
    line = fmt::format(R"({{"time":"{}","level":"{}","rank":{},"world_size":{},"host":"{}","message":"{}"}})", time,
                       level_name(level), g_config.rank, g_config.world_size, json_escape(g_config.host), json_escape(message));
  } else if (g_config.rank >= 0) {
    line =
        fmt::format("{} [r{}/{} {}] {} {}", time, g_config.rank, g_config.world_size, g_config.host, level_name(level), message);
  } else if (!g_config.host.empty()) {
    line = fmt::format("{} [{}] {} {}", time, g_config.host, level_name(level), message);
  } else {
    line = fmt::format("{} {} {}", time, level_name(level), message);
  }
  line += '\n';
  std::lock_guard lock(g_write_mutex);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace rankserve::log
