#include "runtime/model/device_upload.h"

#include <algorithm>

#include "core/error.h"

namespace rankserve::runtime {
namespace {

// The bytes of a contiguous tensor as a flat uint8 tensor on its own device (a view: no copy).
at::Tensor bytes_of(const at::Tensor& t) { return t.view({-1}).view(at::kByte); }

}  // namespace

DeviceUpload::DeviceUpload(at::Device device, int64_t staging_bytes) : device_(device), staging_bytes_(staging_bytes) {
  RANKSERVE_CHECK(staging_bytes > 0, "staging buffer size");
}

at::Tensor DeviceUpload::to_device(const at::Tensor& host) {
  if (device_.is_cpu()) return host;
  at::Tensor source = host.contiguous();
  at::Tensor target = at::empty(source.sizes(), source.options().device(device_));
  copy_through_staging(source, target);
  return target;
}

void DeviceUpload::copy_through_staging(const at::Tensor& source, at::Tensor& target) {
  RANKSERVE_CHECK(source.is_contiguous() && target.is_contiguous() && source.scalar_type() == target.scalar_type() &&
                      source.numel() == target.numel(),
                  "copy_through_staging: matching contiguous tensors");
  if (source.numel() == 0) return;
  if (!staging_.defined()) {
    // Pinned memory needs CUDA at run time (a CPU-only libtorch has no pinned allocator).
    const bool pin = at::globalContext().hasCUDA();
    staging_ = at::empty({staging_bytes_}, at::TensorOptions().dtype(at::kByte).pinned_memory(pin));
  }
  const at::Tensor from = bytes_of(source);
  at::Tensor to = bytes_of(target);
  const int64_t total = from.numel();
  for (int64_t offset = 0; offset < total; offset += staging_bytes_) {
    const int64_t n = std::min(staging_bytes_, total - offset);
    at::Tensor piece = staging_.narrow(0, 0, n);
    piece.copy_(from.narrow(0, offset, n));
    // Blocking: the staging buffer is reused by the next piece (a device copy from pinned memory
    // still runs at DMA speed; the file read of the next slice is what overlapping would hide).
    to.narrow(0, offset, n).copy_(piece);
  }
}

}  // namespace rankserve::runtime
