#include "runtime/model/device_upload.h"

#include <doctest/doctest.h>

using namespace rankserve::runtime;

TEST_CASE("the staged copy moves every byte through a buffer smaller than the tensor") {
  for (at::ScalarType type : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const at::Tensor source = at::arange(1001, at::kFloat).mul(0.37).to(type).reshape({7, 143});
    at::Tensor target = at::zeros_like(source);
    DeviceUpload upload(at::kCPU, /*staging_bytes=*/97);  // pieces that split elements and rows
    upload.copy_through_staging(source, target);
    CHECK(at::equal(source, target));
  }
}

TEST_CASE("on the CPU the upload returns the host tensor itself") {
  const at::Tensor host = at::ones({3, 4}).t();
  DeviceUpload upload(at::kCPU);
  CHECK(upload.to_device(host).is_same(host));
}
