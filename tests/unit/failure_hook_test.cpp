#include "launcher/failure_hook.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace rankserve::launcher;
using namespace std::chrono_literals;

TEST_CASE("clearing the fail-requests callback waits for a call in progress on the watchdog thread, and none runs after") {
  FailureHook hook;
  std::atomic<bool> entered{false}, release{false}, finished{false}, cleared{false};
  std::atomic<int> calls{0};
  hook.set_fail_requests([&](const std::string& reason) {
    CHECK(reason == "rank 1 died");
    ++calls;
    entered = true;
    while (!release) std::this_thread::sleep_for(1ms);
    finished = true;
  });
  std::thread watchdog([&] { hook.fail_requests("rank 1 died"); });
  while (!entered) std::this_thread::sleep_for(1ms);
  // The main thread leaves run_serve (the server and scheduler the callback uses are about to go).
  std::thread main_thread([&] {
    hook.clear_fail_requests();
    cleared = true;
  });
  // While the callback runs, clear must not return (what the callback uses would be destroyed under it).
  for (int i = 0; i < 200 && !cleared; ++i) std::this_thread::sleep_for(1ms);
  CHECK_FALSE(cleared.load());
  release = true;
  watchdog.join();
  main_thread.join();
  CHECK(finished.load());
  CHECK(cleared.load());
  hook.fail_requests("rank 2 died");  // cleared: nothing runs
  CHECK(calls == 1);
}
