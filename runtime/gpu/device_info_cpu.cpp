// describe_gpus() of a build against CPU-only libtorch (RANKSERVE_TORCH_CUDA unset): no device is usable.
#include "runtime/gpu/device_info.h"

namespace rankserve::runtime {

std::vector<GpuInfo> describe_gpus() { return {}; }

}  // namespace rankserve::runtime
