// The hook between serving and the watchdog (runtime/dist/watchdog.h) that stops a rank on any failure:
// set up by main(), used by `rankserve serve` (serve_command.h) and the watchdog thread.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace rankserve::launcher {

// How serving meets the watchdog (runtime/dist/watchdog.h), which stops the rank on any failure.
// Threads: main sets the three functions before run_serve starts the threads that call them (HTTP,
// signal watcher) and never changes them after; the fail-requests callback is set and cleared by the
// main thread inside run_serve and called by the watchdog thread, under the hook's mutex.
class FailureHook {
 public:
  std::function<std::vector<double>()> heartbeat_ages;  // seconds per global rank (rank 0's watchdog)
  // After a failed collective: names the rank that went away (the watchdog's verdict, at once when it
  // has one), or "" (Watchdog::find_silent_ranks).
  std::function<std::string()> find_silent_ranks;
  // Hands a failure to the watchdog thread, which tells the other ranks, fails the requests (below)
  // and exits with `exit_code`; does not return. Any thread.
  std::function<void(int exit_code, const std::string& reason)> stop_rank;

  // Rank 0 while serving: `fail` finishes every in-flight request with the reason and returns once
  // their responses are written. clear waits for a call in progress, so what `fail` uses may then go.
  void set_fail_requests(std::function<void(const std::string& reason)> fail);
  void clear_fail_requests();
  // Runs the callback when one is set. Any thread (the watchdog's, before it exits).
  void fail_requests(const std::string& reason);

 private:
  std::mutex mutex_;
  std::function<void(const std::string& reason)> fail_;
};

}  // namespace rankserve::launcher
