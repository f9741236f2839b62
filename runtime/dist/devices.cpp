#include "runtime/dist/devices.h"

#ifdef RANKSERVE_HAVE_NCCL
#include <cuda_runtime.h>
#endif

namespace rankserve::runtime {

int count_visible_gpus() {
#ifdef RANKSERVE_HAVE_NCCL
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;  // no driver: a CPU machine
  return count;
#else
  return 0;
#endif
}

#ifndef RANKSERVE_HAVE_NCCL
std::optional<DeviceMemory> query_device_memory(const std::string&) { return std::nullopt; }
#endif

}  // namespace rankserve::runtime
