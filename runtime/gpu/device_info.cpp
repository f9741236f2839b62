#include "runtime/gpu/device_info.h"

#include <fmt/format.h>

namespace rankserve::runtime {

std::string format_gpu(const GpuInfo& gpu) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  return fmt::format("cuda:{} {}, sm_{}{}, {} SMs, {:.1f} GiB, {:.1f} GiB free", gpu.index, gpu.name, gpu.major, gpu.minor,
                     gpu.num_multiprocessors, gpu.total_bytes / kGiB, gpu.free_bytes / kGiB);
}

}  // namespace rankserve::runtime
