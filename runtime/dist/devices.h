// The CUDA devices this process can see (0 when built without CUDA or without a driver), and their memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rankserve::runtime {

int count_visible_gpus();

struct DeviceMemory {
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

// Free and total memory of "cuda:N" now (cudaMemGetInfo, which also makes N the calling thread's
// current device); nullopt for "cpu" or a build without CUDA. Throws Error(runtime) when CUDA fails.
std::optional<DeviceMemory> query_device_memory(const std::string& device);

}  // namespace rankserve::runtime
