#include "launcher/failure_hook.h"

namespace rankserve::launcher {

void FailureHook::set_fail_requests(std::function<void(const std::string& reason)> fail) {
  std::lock_guard lock(mutex_);
  fail_ = std::move(fail);
}

void FailureHook::clear_fail_requests() { set_fail_requests(nullptr); }

void FailureHook::fail_requests(const std::string& reason) {
  std::lock_guard lock(mutex_);
  if (fail_) fail_(reason);
}

}  // namespace rankserve::launcher
