#include "runtime/gpu/device_info.h"

#include <doctest/doctest.h>

using rankserve::runtime::GpuInfo;

TEST_CASE("a device table row names the ordinal, the GPU, its compute capability and its memory in GiB") {
  const GpuInfo h200{0, "NVIDIA H200", 9, 0, 132, uint64_t{150} << 30, uint64_t{149} << 30};
  CHECK(rankserve::runtime::format_gpu(h200) == "cuda:0 NVIDIA H200, sm_90, 132 SMs, 150.0 GiB, 149.0 GiB free");
}

TEST_CASE("a build against CPU-only libtorch sees no GPU") {
#ifndef RANKSERVE_TORCH_CUDA
  CHECK(rankserve::runtime::describe_gpus().empty());
#endif
}
