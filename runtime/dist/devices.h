// The CUDA devices this process can see (0 when built without CUDA or without a driver).
#pragma once

namespace rankserve::runtime {

int count_visible_gpus();

}  // namespace rankserve::runtime
