// Copies weight slices from host memory to the model's device through a bounded staging buffer, so
// loading never holds more than one slice on the host. Internal to GptModel's loader. One thread.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace rankserve::runtime {

class DeviceUpload {
 public:
  // `staging_bytes`: the staging buffer's size (the largest piece copied at once). Page-locked
  // (pinned) host memory when CUDA is available at run time, so copies run at DMA speed; plain host
  // memory otherwise.
  explicit DeviceUpload(at::Device device, int64_t staging_bytes = int64_t{64} << 20);

  // `host` (a CPU tensor of any layout) as a contiguous tensor on the device, copied piece by piece
  // through the staging buffer. On the CPU `host` itself comes back (no copy).
  at::Tensor to_device(const at::Tensor& host);

  // The piece-by-piece copy alone, on any pair of devices: `source` and `target` contiguous, of the
  // same dtype and number of elements (exposed for tests).
  void copy_through_staging(const at::Tensor& source, at::Tensor& target);

 private:
  at::Device device_;
  int64_t staging_bytes_;
  at::Tensor staging_;  // [staging_bytes_] uint8, allocated on first use
};

}  // namespace rankserve::runtime
