#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rankserve::testing {

Process::Process(const std::string& command) {
  char path[] = "/tmp/rankserve-test-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  log_path_ = path;
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::execl("/bin/bash", "bash", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
  ::close(fd);
}

Process::~Process() {
  if (!status_) {
    ::kill(-pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  ::unlink(log_path_.c_str());
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!status_) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

void Process::signal(int sig) {
  if (!status_) ::kill(-pid_, sig);
}

std::string Process::output() const {
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (output().find(text) != std::string::npos) return true;
    if (wait_for(std::chrono::milliseconds(0))) return output().find(text) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string wait_for_file_word(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string word;
  while (word.empty() && std::chrono::steady_clock::now() < deadline) {
    std::ifstream(path) >> word;
    if (word.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return word;
}

Result run(const std::string& command, std::chrono::milliseconds timeout) {
  Process p(command);
  auto code = p.wait_for(timeout);
  if (code) return Result{*code, p.output()};
  // Still running at the deadline: where it waits says more than its (often empty) output.
  Process stacks("command -v gdb >/dev/null && for pid in $(pgrep -g " + std::to_string(p.pid()) +
                 "); do echo \"--- pid $pid: $(tr '\\0' ' ' < /proc/$pid/cmdline)\"; "
                 "timeout 20 gdb -p $pid -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)'; done");
  stacks.wait_for(std::chrono::seconds(60));
  return Result{-1, p.output() + "\n[still running at the deadline of " + std::to_string(timeout.count()) +
                        " ms; stacks of its process group:]\n" + stacks.output()};
}

}  // namespace rankserve::testing
