// Wall-clock time as log lines and reports print it.
#pragma once

#include <chrono>
#include <string>

namespace rankserve {

// ISO 8601 in UTC with milliseconds: "2026-12-02T01:37:56.123Z".
std::string utc_timestamp(std::chrono::system_clock::time_point when);

}  // namespace rankserve
