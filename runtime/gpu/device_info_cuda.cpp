// describe_gpus() through CUDA-enabled libtorch (compiled only with RANKSERVE_TORCH_CUDA).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>

#include "runtime/gpu/device_info.h"

namespace rankserve::runtime {

std::vector<GpuInfo> describe_gpus() {
  std::vector<GpuInfo> gpus;
  try {
    const int count = c10::cuda::device_count();  // 0, with a warning, when there is no driver
    for (int i = 0; i < count; ++i) {
      const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(i));
      const cudaDeviceProp* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(i));
      size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) total_bytes = p->totalGlobalMem;
      gpus.push_back({i, p->name, p->major, p->minor, p->multiProcessorCount, total_bytes, free_bytes});
    }
  } catch (const c10::Error&) {
    // A device that cannot be opened (busy, lost) ends the list: the caller reports fewer GPUs.
  }
  return gpus;
}

}  // namespace rankserve::runtime
