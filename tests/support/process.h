// Test helper: runs a shell command in its own process group with output captured to a file,
// waits with a deadline, and always kills what is left on destruction (tests never leak daemons).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

namespace rankserve::testing {

class Process {
 public:
  explicit Process(const std::string& command);
  ~Process();  // SIGKILL to the whole process group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Exit code (128 + signal when killed), or nullopt when still running at the deadline.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  void signal(int sig);        // to the shell's process group
  std::string output() const;  // stdout and stderr so far
  // Waits until output() contains `text`; false at the deadline.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

struct Result {
  int code;
  std::string output;
};

// The first word of the file at `path` once it exists and holds one (a URL a server writes), polling
// until the deadline; empty when it never does.
std::string wait_for_file_word(const std::string& path, std::chrono::milliseconds timeout);

// Runs to completion or the deadline (then kills it and returns code -1, with the stacks of its
// process group appended to the output when gdb is installed).
Result run(const std::string& command, std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace rankserve::testing
