#include "runtime/serving/readiness.h"

#include <fmt/format.h>

namespace rankserve::runtime {

std::string StallWatch::stall_reason(Clock::time_point now, std::chrono::milliseconds stall_after) const {
  if (!in_step_ || now - last_progress_ <= stall_after) return "";
  const double step_age = std::chrono::duration<double>(now - last_progress_).count();
  return fmt::format("the engine has not finished a step for {:.1f} s", step_age);
}

std::string not_ready_reason(const AdmissionQueue& queue, const std::string& probe, const StallWatch& stall,
                             Clock::time_point now, std::chrono::milliseconds stall_after) {
  std::string reason = queue.not_ready_reason();
  if (reason.empty()) reason = probe;
  if (reason.empty()) reason = stall.stall_reason(now, stall_after);
  return reason;
}

}  // namespace rankserve::runtime
