// query_device_memory with the CUDA runtime (compiled only when the CUDA toolkit is found).
// UNRUN: no GPU was available where this was written (docs/runtime.md).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "core/error.h"
#include "runtime/dist/devices.h"

namespace rankserve::runtime {

std::optional<DeviceMemory> query_device_memory(const std::string& device) {
  if (device.rfind("cuda:", 0) != 0) return std::nullopt;
  const int index = std::stoi(device.substr(5));
  auto check = [&](cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
      throw Error(ErrorCode::runtime, fmt::format("memory: {} on {} failed: {}", what, device, cudaGetErrorString(status)));
    }
  };
  check(cudaSetDevice(index), "cudaSetDevice");
  size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return DeviceMemory{free_bytes, total_bytes};
}

}  // namespace rankserve::runtime
