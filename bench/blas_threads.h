// OpenBLAS's own thread count, set at run time (looked up, so a BLAS without the call links too).
#pragma once

#include <dlfcn.h>

namespace rankserve::bench {

// Gives OpenBLAS's pool `threads` threads for the calls that follow; false when the BLAS has no such call.
inline bool set_openblas_threads(int threads) {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return false;
  set(threads);
  return true;
}

}  // namespace rankserve::bench
