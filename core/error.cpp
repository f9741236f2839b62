#include "core/error.h"

#include <fmt/format.h>

namespace rankserve {

int exit_code(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::usage: return 2;
    case ErrorCode::topology: return 3;
    case ErrorCode::rendezvous: return 4;
    case ErrorCode::load: return 5;
    case ErrorCode::runtime:
    default: return 6;
  }
  return 6;
}

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::usage: return "usage";
    case ErrorCode::topology: return "topology";
    case ErrorCode::rendezvous: return "rendezvous";
    case ErrorCode::load: return "load";
    case ErrorCode::runtime: return "runtime";
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::overloaded: return "overloaded";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::timeout: return "timeout";
  }
  return "runtime";
}

void fail_check(const char* expression, const char* file, int line, const std::string& message) {
  throw Error(ErrorCode::runtime, fmt::format("internal: check `{}` failed at {}:{}: {}", expression, file, line, message));
}

}  // namespace rankserve
