// What each CUDA device this process sees is (name, memory, compute capability): the rows of the per-rank
// device table at start-up and the gpu test tier's check that a GPU is there. Read through CUDA-enabled
// libtorch (device_info_cuda.cpp, compiled only with RANKSERVE_TORCH_CUDA); a CPU build sees no device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rankserve::runtime {

struct GpuInfo {
  int index = 0;     // CUDA device ordinal, as CUDA_VISIBLE_DEVICES numbers them
  std::string name;  // "NVIDIA H200"
  int major = 0;     // compute capability major.minor
  int minor = 0;
  int num_multiprocessors = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;  // free when described
};

// Every device this process sees, by ordinal; empty in a CPU build or without a driver. Any thread; creates a
// CUDA context on each device. Never throws.
std::vector<GpuInfo> describe_gpus();

// One row of the device table: "cuda:0 NVIDIA H200, sm_90, 132 SMs, 139.8 GiB, 139.2 GiB free". Torch-free.
std::string format_gpu(const GpuInfo& gpu);

}  // namespace rankserve::runtime
