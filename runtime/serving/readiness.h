// Readiness: whether the service should take traffic — its lifecycle (AdmissionQueue), the launcher's
// health probe (heartbeats), and a step that takes too long (a stalled engine). For
// Scheduler::status(), which the health and metrics endpoints call from any thread.
#pragma once

#include <chrono>
#include <string>

#include "runtime/serving/admission.h"

namespace rankserve::runtime {

// When the engine last made progress and whether it is inside a step. Not thread-safe: the
// Scheduler calls every method under its mutex (the engine thread writes, status() reads).
class StallWatch {
 public:
  // The serving loop starts, or a plan was built: `in_step` when every rank now runs a step.
  void restart(Clock::time_point now, bool in_step = false) {
    last_progress_ = now;
    in_step_ = in_step;
  }
  // The step's results came back.
  void step_done(Clock::time_point now) { restart(now, false); }

  // "" unless a step began more than `stall_after` before `now`; else says for how long (seconds).
  std::string stall_reason(Clock::time_point now, std::chrono::milliseconds stall_after) const;

 private:
  Clock::time_point last_progress_ = Clock::now();
  bool in_step_ = false;
};

// The first reason not to be ready, "" when ready: the lifecycle's (failed, stopping, draining,
// loading), then `probe` (the launcher's health probe result, "" healthy), then a stalled step.
std::string not_ready_reason(const AdmissionQueue& queue, const std::string& probe, const StallWatch& stall,
                             Clock::time_point now, std::chrono::milliseconds stall_after);

}  // namespace rankserve::runtime
