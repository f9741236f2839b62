// The check the safetensors and pickle fuzzers make of every entry a parser let into a TensorFile:
// its view can be made (at::from_blob accepts the shape) and every byte it touches lies inside the
// file. Computed here independently of TensorFile::add, with 128-bit arithmetic. C++17.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/model/tensor_file.h"
#include "tests/fuzz/fuzz_support.h"

namespace rankserve::fuzz {

inline void check_views(const runtime::TensorFile& file) {
  for (const auto& [name, e] : file.entries()) {
    __int128 low = 0, high = 0, count = 1;
    for (size_t d = 0; d < e.shape.size(); ++d) {
      if (e.shape[d] < 0) {
        std::fprintf(stderr, "fuzz: tensor %s was accepted with dimension %lld < 0\n", name.c_str(),
                     static_cast<long long>(e.shape[d]));
        std::abort();
      }
      count *= e.shape[d];
    }
    if (count == 0) continue;  // touches no byte
    __int128 stride = 1;
    for (size_t d = e.shape.size(); d-- > 0;) {
      const __int128 step = e.strides.empty() ? stride : e.strides[d];
      const __int128 reach = static_cast<__int128>(e.shape[d] - 1) * step;
      (reach < 0 ? low : high) += reach;
      stride *= e.shape[d];
    }
    const __int128 element = static_cast<__int128>(at::elementSize(e.dtype));
    const __int128 first = static_cast<__int128>(e.offset) + low * element,
                   end = static_cast<__int128>(e.offset) + (high + 1) * element;
    if (first < 0 || end > static_cast<__int128>(file.size())) {
      std::fprintf(stderr, "fuzz: tensor %s reaches bytes [%lld, %lld) of a %llu-byte file\n", name.c_str(),
                   static_cast<long long>(first), static_cast<long long>(end), static_cast<unsigned long long>(file.size()));
      std::abort();
    }
  }
  expect_only(ErrorCode::load, [&] {
    for (const auto& [name, e] : file.entries()) file.view(name);
  });
}

}  // namespace rankserve::fuzz
