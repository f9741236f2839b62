// The one error type of rankserve and the process exit codes it maps to.
// Thrown anywhere; converted only in main() (exit code) and the HTTP handler wrapper (status + body).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace rankserve {

// Categories a user can act on. Each maps to a documented exit code (docs/exit-codes.md).
enum class ErrorCode {
  usage,       // a flag or environment value is malformed or contradictory
  topology,    // the launch does not match the requested layout (tasks != nodes x gpus, ...)
  rendezvous,  // peers did not find each other within the deadline
  load,        // a checkpoint or tokenizer cannot be read
  runtime,     // a failure after start-up: a collective, a dead peer, an internal check
  // Per-request outcomes of the serving front end (HTTP status in brackets); never a process exit.
  bad_request,  // a malformed or out-of-range request field [400]
  not_found,    // an unknown model, version or path [404]
  overloaded,   // the queue is full [429, with Retry-After]
  unavailable,  // not ready, draining, or a rank failed [503]
  timeout,      // the request's deadline passed [504]
};

// Message formula: "<area>: <what was found>; <what was expected> (<what to change>)".
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Process exit status for an error category: usage 2, topology 3, rendezvous 4, load 5, runtime 6
// (request outcomes, which never end a process, map to 6).
int exit_code(ErrorCode code) noexcept;
std::string_view to_string(ErrorCode code) noexcept;

[[noreturn]] void fail_check(const char* expression, const char* file, int line, const std::string& message);

}  // namespace rankserve

// Internal invariant that must hold whatever the user does; throws ErrorCode::runtime with the
// expression and file:line. Anything a user or the cluster can cause gets a real Error instead.
#define RANKSERVE_CHECK(cond, message)                                          \
  do {                                                                          \
    if (!(cond)) ::rankserve::fail_check(#cond, __FILE__, __LINE__, (message)); \
  } while (0)
